"""The intents: what each story asks a model to build, and what its check looks for."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["INTENTS", "INTENTS_BY_ID", "Intent"]


@dataclass(frozen=True)
class Intent:
    """One UI-generation story: build ``title`` as described by ``prompt``.

    ``roles`` are the ARIA roles the check looks for (native elements count through their
    implicit roles), ``states`` the states it asserts (``pressed``, ``expanded``, ``disabled``,
    ``busy``, ``invalid``...) and ``keys`` the keys it presses. The check itself is
    :func:`~pytest_teach.envs.stories.check_story`, found by ``id``.
    """

    id: str
    title: str
    prompt: str
    roles: tuple[str, ...]
    states: tuple[str, ...] = ()
    keys: tuple[str, ...] = ("Tab", "Enter")


INTENTS: tuple[Intent, ...] = (
    Intent(
        "button",
        "Button",
        'A "Save changes" button. Activating it (click, Enter or Space) shows the text "Saved" '
        'in a live status region (role="status") that is on the page from the start.',
        roles=("button", "status"),
    ),
    Intent(
        "toggle-switch",
        "Toggle switch",
        'A toggle switch labelled "Dark mode", off initially. It exposes its on/off state to '
        'assistive technology (role="switch" with aria-checked, a button with aria-pressed, or '
        "a native checkbox) and Space toggles it.",
        roles=("switch",),
        states=("checked",),
        keys=("Tab", "Space"),
    ),
    Intent(
        "card",
        "Card",
        'A product card (an <article>) for "Trail Running Shoes": a product image with alt '
        'text, the name as a heading, a one-line description, the price "$89" and an '
        '"Add to cart" button. Activating the button shows "Added to cart" in a status region '
        "inside the card.",
        roles=("article", "heading", "img", "button", "status"),
    ),
    Intent(
        "dialog",
        "Dialog",
        'A "Delete file" button that opens a modal confirmation dialog titled "Delete file?" '
        'with a short message and "Cancel" and "Delete" buttons. The dialog is hidden until '
        "opened, is modal (aria-modal or showModal()), is named by its title, moves focus inside "
        "when it opens, closes on Escape and on Cancel, and returns focus to the button that "
        "opened it.",
        roles=("button", "dialog"),
        states=("modal",),
        keys=("Tab", "Enter", "Escape"),
    ),
    Intent(
        "tabs",
        "Tabs",
        'Tabs "Overview", "Specs" and "Reviews", each with a panel of text. Use the ARIA tabs '
        'pattern: role="tablist", role="tab" with aria-selected and aria-controls, '
        'role="tabpanel". "Overview" is selected first and only the selected panel is shown. '
        "The tab list is one Tab stop (roving tabindex); Left/Right arrows move between tabs and "
        "select them (Enter or Space also selects the focused tab).",
        roles=("tablist", "tab", "tabpanel"),
        states=("selected",),
        keys=("Tab", "ArrowRight", "Enter"),
    ),
    Intent(
        "form-field-error",
        "Form field with error",
        'A required email field labelled "Email", shown in its error state: its value is '
        '"not-an-email", it is marked invalid (aria-invalid="true") and the visible message '
        '"Enter a valid email address" is tied to it with aria-describedby or aria-errormessage.',
        roles=("textbox",),
        states=("invalid", "required"),
        keys=("Tab",),
    ),
    Intent(
        "nav-menu",
        "Navigation menu",
        'A site navigation landmark with a "Menu" disclosure button that shows and hides a list '
        "of links: Home, Products, About, Contact. The list is hidden at first; the button has "
        "aria-expanded and aria-controls, and Enter or Space toggles it.",
        roles=("navigation", "button", "list", "link"),
        states=("expanded",),
        keys=("Tab", "Enter", "Space", "Shift+Tab"),
    ),
    Intent(
        "accordion",
        "Accordion",
        'An FAQ accordion with three questions: "How long does shipping take?", "Can I return '
        'an item?" and "Do you ship internationally?". Each question is a button inside a '
        "heading, with aria-expanded and aria-controls pointing at its answer panel. All answers "
        "are collapsed at first; Enter or Space expands and collapses an answer.",
        roles=("heading", "button"),
        states=("expanded",),
        keys=("Tab", "Enter", "Space"),
    ),
    Intent(
        "checkbox-group",
        "Checkbox group",
        'A group of checkboxes named "Notifications" with options "Email", "SMS" and "Push"; '
        '"Email" is checked. Use a fieldset with a legend (or role="group" with a label); Space '
        "toggles the focused checkbox.",
        roles=("group", "checkbox"),
        states=("checked",),
        keys=("Tab", "Space"),
    ),
    Intent(
        "radio-group",
        "Radio group",
        'A radio group named "Shipping speed" with options "Standard", "Express" and '
        '"Overnight"; "Standard" is selected. The group is one Tab stop and the arrow keys move '
        "the selection.",
        roles=("radiogroup", "radio"),
        states=("checked",),
        keys=("Tab", "ArrowDown"),
    ),
    Intent(
        "loading-button",
        "Loading button",
        'A "Submit order" button with a loading state. Activating it puts it in the loading '
        'state: aria-busy="true", unavailable (aria-disabled="true" or disabled) and a status '
        'region announces "Submitting order". It stays loading (no timers) and ignores further '
        "activations.",
        roles=("button", "status"),
        states=("busy", "disabled"),
    ),
    Intent(
        "disabled-button",
        "Disabled button",
        'A "Post title" text field and a "Publish" button that is disabled while the title is '
        "empty. While disabled, the button is exposed as disabled and clicking it or pressing "
        "Enter/Space on it does nothing. Typing a title enables it; activating it then shows "
        '"Published" in a status region.',
        roles=("textbox", "button", "status"),
        states=("disabled",),
        keys=("Tab", "Enter", "Space"),
    ),
    Intent(
        "alert",
        "Alert",
        'An error alert (role="alert") saying "Payment failed: your card was declined." with a '
        '"Dismiss" button that removes or hides the alert.',
        roles=("alert", "button"),
    ),
    Intent(
        "breadcrumb",
        "Breadcrumb",
        'A breadcrumb trail: a navigation landmark named "Breadcrumb" holding an ordered list '
        'Home > Products > Running shoes. "Home" and "Products" are links; "Running shoes" is '
        'the current page, marked aria-current="page".',
        roles=("navigation", "list", "link"),
        states=("current",),
        keys=("Tab",),
    ),
    Intent(
        "search-field",
        "Search field",
        'A product search in a search landmark: a search field labelled "Search products" and a '
        '"Search" submit button. Submitting (Enter in the field or the button) stays on the page '
        "and shows 'Results for \"QUERY\"' in a status region.",
        roles=("search", "searchbox", "button", "status"),
        keys=("Tab", "Enter"),
    ),
)

INTENTS_BY_ID: dict[str, Intent] = {intent.id: intent for intent in INTENTS}
