/* Lumen documentation: the pages of the docs site (read by docs.js). */
window.DOCS = {
  groups: [
    { title: "Getting started", pages: ["introduction", "installation", "quickstart"] },
    {
      title: "Guides",
      pages: [
        "configuration", "network-configuration", "dev-server", "plugins", "writing-plugins",
        "deployment",
      ],
    },
    { title: "Reference", pages: ["configuration-reference", "cli-reference", "api-reference"] },
    { title: "Help", pages: ["troubleshooting", "network-troubleshooting", "faq", "changelog"] },
  ],
  pages: {
    "introduction": {
      title: "Introduction",
      sections: [
        ["what-is-lumen", "What is Lumen?", [
          "Lumen is a small web application server for Python. It serves an app, reloads it " +
          "while you develop, and runs it behind a process manager in production.",
        ]],
        ["how-it-works", "How it works", [
          "A Lumen project is a folder with a lumen.toml file and an app module. The lumen " +
          "command reads the configuration, imports the app and starts the server.",
        ]],
        ["next-steps", "Next steps", [
          "Install Lumen, then follow the quickstart to create and run your first project.",
        ]],
      ],
    },
    "installation": {
      title: "Installation",
      sections: [
        ["requirements", "Requirements", [
          "Lumen needs Python 3.10 or newer on Linux, macOS or Windows.",
        ]],
        ["installing-with-pip", "Installing with pip", [
          "Install the latest release with pip install lumen-server. We recommend a virtual " +
          "environment per project.",
        ]],
        ["upgrading", "Upgrading", [
          "Upgrade with pip install --upgrade lumen-server. Read the changelog first: version " +
          "2.0.0 renamed several settings.",
        ]],
        ["uninstalling", "Uninstalling", [
          "Remove Lumen with pip uninstall lumen-server. Your projects are left untouched.",
        ]],
      ],
    },
    "quickstart": {
      title: "Quickstart",
      sections: [
        ["create-a-project", "Create a project", [
          "Run lumen new myapp to create a folder with a lumen.toml file and an example app.",
        ]],
        ["run-it", "Run it", [
          "Inside the folder run lumen serve. Open the address it prints in your browser.",
        ]],
        ["deploy-it", "Deploy it", [
          "When you are ready, build a release with lumen build and follow the deployment guide.",
        ]],
      ],
    },
    "configuration": {
      title: "Configuration",
      sections: [
        ["the-lumen-toml-file", "The lumen.toml file", [
          "Settings live in lumen.toml at the root of the project, in sections such as " +
          "[server] and [logging].",
        ]],
        ["settings-precedence", "Settings precedence", [
          "Command-line options override environment variables, which override lumen.toml.",
        ]],
        ["profiles", "Profiles", [
          "A [profile.NAME] section overrides settings when you pass --profile NAME.",
        ]],
      ],
    },
    "network-configuration": {
      title: "Network configuration",
      sections: [
        ["binding-address", "Binding address", [
          "By default the server binds 127.0.0.1. Set server.host to 0.0.0.0 to accept " +
          "connections from other machines.",
        ]],
        ["using-a-proxy", "Using a proxy", [
          "To reach the internet through a proxy, set the HTTPS_PROXY environment variable, or " +
          "set network.proxy in lumen.toml, for example network.proxy = " +
          "\"http://proxy.internal:3128\". Hosts listed in network.no_proxy bypass it.",
        ]],
        ["tls-certificates", "TLS certificates", [
          "Point server.tls_cert and server.tls_key at PEM files to serve HTTPS.",
        ]],
      ],
    },
    "dev-server": {
      title: "Dev server",
      sections: [
        ["starting-the-dev-server", "Starting the dev server", [
          "lumen serve starts the development server. The default port is 8080; the server " +
          "prints its address when it is ready.",
        ]],
        ["live-reload", "Live reload", [
          "The dev server watches your source files and reloads the app when one changes.",
        ]],
        ["changing-the-port", "Changing the port", [
          "Pass --port 9000, set LUMEN_PORT=9000, or set server.port in lumen.toml.",
        ]],
      ],
    },
    "plugins": {
      title: "Plugins",
      sections: [
        ["installing-plugins", "Installing plugins", [
          "Plugins are Python packages. Install them with pip like any other package.",
        ]],
        ["enabling-plugins", "Enabling plugins", [
          "List the plugins to load in plugins.enabled in lumen.toml.",
        ]],
        ["plugin-hooks", "Plugin hooks", [
          "Plugins react to hooks such as on_startup and on_request. Writing plugins explains " +
          "the hook order.",
        ]],
      ],
    },
    "writing-plugins": {
      title: "Writing plugins",
      sections: [
        ["plugin-skeleton", "Plugin skeleton", [
          "A plugin is a module with a setup(app) function that registers hooks.",
        ]],
        ["hook-order", "Hook order", [
          "Hooks run in this order: on_load, on_startup, on_request, on_response, on_shutdown. " +
          "Within one hook, plugins run in the order they are listed in plugins.enabled.",
        ]],
        ["testing-plugins", "Testing plugins", [
          "Use lumen.testing.Client to send requests to an app with your plugin enabled.",
        ]],
      ],
    },
    "deployment": {
      title: "Deployment",
      sections: [
        ["docker", "Docker", [
          "The official image runs lumen serve --production on port 8000.",
        ]],
        ["systemd", "Systemd", [
          "Run Lumen as a service with the unit file shown in this guide.",
        ]],
        ["health-checks", "Health checks", [
          "GET /healthz answers 200 when the app is ready.",
        ]],
      ],
    },
    "configuration-reference": {
      title: "Configuration reference",
      sections: [
        ["server-settings", "Server settings", [
          "server.host (default 127.0.0.1), server.port (default 8080), server.workers " +
          "(default 1), server.tls_cert, server.tls_key.",
        ]],
        ["logging-settings", "Logging settings", [
          "logging.level (default info), logging.format (text or json).",
        ]],
        ["environment-variables", "Environment variables", [
          "LUMEN_PORT, LUMEN_HOST, LUMEN_PROFILE and HTTPS_PROXY override the matching settings.",
        ]],
        ["deprecated-settings", "Deprecated settings", [
          "server.listen was replaced by server.host and server.port in 2.0.0.",
        ]],
      ],
    },
    "cli-reference": {
      title: "CLI reference",
      sections: [
        ["lumen-new", "lumen new", ["Create a project from a template."]],
        ["lumen-serve", "lumen serve", ["Start the server. Options: --port, --host, --profile."]],
        ["lumen-build", "lumen build", ["Build a release into dist/."]],
        ["global-options", "Global options", ["--verbose, --quiet, --version and --help."]],
      ],
    },
    "api-reference": {
      title: "API reference",
      sections: [
        ["app", "App", ["lumen.App(config=None): the application object."]],
        ["request", "Request", ["Request.method, Request.path, Request.json()."]],
        ["response", "Response", ["Response(body, status=200, headers=None)."]],
      ],
    },
    "troubleshooting": {
      title: "Troubleshooting",
      sections: [
        ["server-does-not-start", "Server does not start", [
          "Run lumen serve --verbose and read the first error it prints.",
        ]],
        ["port-already-in-use", "Port already in use", [
          "Another process holds the port. Stop it, or start Lumen with --port.",
        ]],
        ["plugin-not-loaded", "Plugin not loaded", [
          "Check that the plugin is installed in the same environment and listed in " +
          "plugins.enabled.",
        ]],
      ],
    },
    "network-troubleshooting": {
      title: "Network troubleshooting",
      sections: [
        ["proxy-errors", "Proxy errors", [
          "A 407 from the proxy means it needs credentials: put them in the proxy URL. A " +
          "connection refused error means the proxy address is wrong.",
        ]],
        ["timeouts", "Timeouts", [
          "Raise network.timeout when upstream services are slow.",
        ]],
        ["certificate-errors", "Certificate errors", [
          "Set network.ca_bundle to your company's CA file when a proxy inspects TLS.",
        ]],
      ],
    },
    "faq": {
      title: "FAQ",
      sections: [
        ["is-lumen-free", "Is Lumen free?", ["Yes, Lumen is open source under the MIT license."]],
        ["does-lumen-support-async", "Does Lumen support async?", [
          "Yes: handlers can be async functions.",
        ]],
      ],
    },
    "changelog": {
      title: "Changelog",
      sections: [
        ["v2-10-0", "2.10.0", ["Added network.ca_bundle. Faster startup."]],
        ["v2-2-0", "2.2.0", ["Added profiles."]],
        ["v2-1-1", "2.1.1", ["Fixed live reload on macOS."]],
        ["v2-1-0", "2.1.0", ["Added the on_response hook and LUMEN_PROFILE."]],
        ["v2-0-0", "2.0.0", ["Renamed server.listen to server.host and server.port."]],
      ],
    },
  },
};
