"""The browser tasks: a goal on one of the bundled sites, a check of the page's state, and the
oracle's plan.

A check reads what the site itself knows (``window.__teachState()``: the cart, the cookie
choice, the page and section shown, the booking that was confirmed...) and, for questions, the
answer the agent gave with ``done``. It never trusts the agent's account of what it did.

A plan is a list of steps in the session's action format whose target is named by role and
accessible name instead of a ref (resolved against the current snapshot at every step). A step
may carry a ``decoy``: the near-duplicate a careless agent picks instead (``Blue Mug XL`` for
``Blue Mug``, ``Learn more`` for ``Accept all``). ``done`` may carry ``answer_pattern``, a regular
expression read off the current snapshot.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._server import SITES_DIR

__all__ = ["TASKS", "TASKS_BY_ID", "Check", "Task", "catalogue"]

Check = Callable[[Any, dict[str, Any]], tuple[bool, str]]


@dataclass(frozen=True)
class Task:
    """One browser task.

    ``start`` is a path inside ``site``; ``goal`` is what the agent is told; ``check(page,
    state)`` returns ``(passed, message)`` where ``state`` is the site's ``__teachState()`` plus
    ``"answer"`` (the agent's ``done`` answer, or None); ``plan`` is the oracle's solution.
    """

    id: str
    site: str
    start: str
    goal: str
    category: str
    check: Check = field(repr=False, compare=False)
    plan: tuple[dict[str, Any], ...] = field(repr=False)

    @property
    def start_path(self) -> str:
        """The start page as a path on the site server (``/shop/index.html``)."""
        return f"/{self.site}/{self.start}"


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    """The shop's catalogue (``sites/shop/catalogue.js``): ``categories`` and ``products``."""
    text = (SITES_DIR / "shop" / "catalogue.js").read_text(encoding="utf-8")
    body = text.split("=", 1)[1].strip().rstrip(";")
    return json.loads(body)


def _product(product_id: str) -> dict[str, Any]:
    for product in catalogue()["products"]:
        if product["id"] == product_id:
            return product
    raise KeyError(product_id)


def _extreme(category: str, max_price: float, *, cheapest: bool) -> dict[str, Any]:
    items = [
        p for p in catalogue()["products"] if p["category"] == category and p["price"] <= max_price
    ]
    return (min if cheapest else max)(items, key=lambda p: p["price"])


# -- checks ----------------------------------------------------------------------------------


def _all(*checks: Check) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        messages = []
        for one in checks:
            ok, message = one(page, state)
            if not ok:
                return False, message
            messages.append(message)
        return True, "; ".join(messages)

    return check


def _lines(cart: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{line['qty']} x {line['name']}" for line in cart) or "nothing"


def _cart_is(expected: dict[str, int]) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        cart = state.get("cart") or []
        have = {line["id"]: line["qty"] for line in cart}
        want = ", ".join(f"{n} x {_product(i)['name']}" for i, n in expected.items())
        if have != expected:
            return False, f"the cart holds {_lines(cart)}; expected {want}"
        return True, f"the cart holds {want}"

    return check


def _consent(value: str) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        have = state.get("cookies")
        if have != value:
            return False, f"cookie choice is {have or 'not made'}; expected {value}"
        return True, f"cookies {value}"

    return check


def _ordered(expected: dict[str, int]) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        orders = state.get("orders") or []
        if not orders:
            return False, "no order was placed"
        have = {line["id"]: line["qty"] for line in orders[-1]["items"]}
        if have != expected:
            got = ", ".join(f"{n} x {_product(i)['name']}" for i, n in have.items())
            return False, f"order {orders[-1]['number']} holds {got}; expected {expected}"
        return True, f"order {orders[-1]['number']} placed"

    return check


def _answer(expected: str | Callable[[dict[str, Any]], str | None]) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        want = expected(state) if callable(expected) else expected
        answer = state.get("answer")
        if want is None:
            return False, "nothing on the page to compare the answer with"
        if answer is None or want.lower() not in str(answer).lower():
            return False, f"answered {answer!r}; expected {want!r}"
        return True, f"answered {want}"

    return check


def _docs_at(page_slug: str, section: str | None = None) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        if state.get("page") != page_slug:
            return False, f"on docs page {state.get('page')!r}; expected {page_slug!r}"
        if section is not None and state.get("hash") != section:
            return False, f"at section {state.get('hash') or '(top)'!r}; expected {section!r}"
        return True, f"on {page_slug}" + (f"#{section}" if section else "")

    return check


def _visited(page_slug: str) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        if page_slug not in (state.get("visited") or []):
            return False, f"never opened the {page_slug!r} page"
        return True, f"opened {page_slug}"

    return check


def _searched(word: str) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        last = state.get("lastSearch") or ""
        if word.lower() not in last.lower():
            return False, f"last search was {last!r}; expected a search for {word!r}"
        return True, f"searched for {last!r}"

    return check


def _booked(**expected: Any) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        booking = state.get("confirmed")
        if not booking:
            errors = "; ".join(e["message"] for e in state.get("errors") or [])
            return False, "no booking was confirmed" + (
                f" (form errors: {errors})" if errors else ""
            )
        wrong = [
            f"{k}={booking.get(k)!r} (expected {v!r})"
            for k, v in expected.items()
            if booking.get(k) != v
        ]
        if wrong:
            return False, "booking confirmed with " + ", ".join(wrong)
        return True, f"booking {booking.get('reference')} confirmed"

    return check


def _error_seen(field_name: str) -> Check:
    def check(page: Any, state: dict[str, Any]) -> tuple[bool, str]:
        if field_name not in (state.get("errorFields") or []):
            return False, f"the form never reported an error on {field_name}"
        return True, f"{field_name} error seen and fixed"

    return check


# -- plans -----------------------------------------------------------------------------------


def _t(role: str, name: str, **kw: Any) -> dict[str, Any]:
    return {"role": role, "name": name, **kw}


def _click(role: str, name: str, decoy: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"type": "click", "target": _t(role, name, **kw)}
    if decoy is not None:
        step["decoy"] = decoy
    return step


def _fill(role: str, name: str, text: str) -> dict[str, Any]:
    return {"type": "fill", "target": _t(role, name), "text": text}


def _select(name: str, value: str) -> dict[str, Any]:
    return {"type": "select", "target": _t("combobox", name), "value": value}


def _done(answer_pattern: str | None = None) -> dict[str, Any]:
    return (
        {"type": "done", "answer_pattern": answer_pattern} if answer_pattern else {"type": "done"}
    )


_ACCEPT = _click("button", "Accept all", decoy=_t("link", "Learn more"))
_REJECT = _click("button", "Reject all", decoy=_t("link", "Learn more"))
_CART = _click("link", "Cart", match="prefix")


def _search_shop(query: str, *, enter: bool = False) -> list[dict[str, Any]]:
    submit = (
        {"type": "press", "key": "Enter", "target": _t("searchbox", "Search products")}
        if enter
        else _click("button", "Search")
    )
    return [_fill("searchbox", "Search products", query), submit]


def _add(name: str, decoy: str | None = None) -> dict[str, Any]:
    return _click(
        "button",
        f"Add {name} to cart",
        decoy=_t("button", f"Add {decoy} to cart") if decoy else None,
    )


def _search_docs(query: str, *, enter: bool = False) -> list[dict[str, Any]]:
    submit = (
        {"type": "press", "key": "Enter", "target": _t("searchbox", "Search docs")}
        if enter
        else _click("button", "Search")
    )
    return [_fill("searchbox", "Search docs", query), submit]


_RESULTS = {"role": "list", "name": "Search results"}
_SIDEBAR = {"role": "navigation", "name": "Documentation"}
_ON_PAGE = {"role": "navigation", "name": "On this page"}


def _booking(
    *,
    name: str,
    email: str,
    checkin: str,
    checkout: str,
    guests: int,
    room: str,
    decoy_room: str | None = None,
) -> list[dict[str, Any]]:
    return [
        _fill("textbox", "Full name", name),
        _fill("textbox", "Email", email),
        _fill("textbox", "Check-in date", checkin),
        _fill("textbox", "Check-out date", checkout),
        _select("Guests", str(guests)),
        _click("radio", room, decoy=_t("radio", decoy_room) if decoy_room else None),
        _click("checkbox", "I accept the terms and conditions"),
        _click("button", "Book now"),
    ]


# -- the tasks -------------------------------------------------------------------------------


def _shop_tasks() -> list[Task]:
    cheapest = _extreme("kitchen", 15, cheapest=True)
    priciest = _extreme("office", 30, cheapest=False)
    return [
        Task(
            "shop-accept-blue-mug",
            "shop",
            "index.html",
            "Accept the cookies, then add one Blue Mug to the cart.",
            "cart",
            _all(_consent("accepted"), _cart_is({"blue-mug": 1})),
            (_ACCEPT, *_search_shop("Blue Mug"), _add("Blue Mug", "Blue Mug XL"), _done()),
        ),
        Task(
            "shop-reject-desk-lamp",
            "shop",
            "index.html",
            "Reject the optional cookies, then add a Desk Lamp to the cart.",
            "cart",
            _all(_consent("rejected"), _cart_is({"desk-lamp": 1})),
            (
                _REJECT,
                *_search_shop("desk lamp", enter=True),
                _add("Desk Lamp", "Desk Lamp Pro"),
                _done(),
            ),
        ),
        Task(
            "shop-cheapest-kitchen",
            "shop",
            "index.html",
            "Accept the cookies. Show only Kitchen products that cost at most $15, and add the "
            "cheapest of them to the cart.",
            "filters",
            _cart_is({cheapest["id"]: 1}),
            (
                _ACCEPT,
                _select("Category", "kitchen"),
                _fill("spinbutton", "Max price ($)", "15"),
                _select("Sort by", "price-asc"),
                _click("button", "Apply filters"),
                _add(cheapest["name"], "Espresso Cup Pair"),
                _done(),
            ),
        ),
        Task(
            "shop-priciest-office",
            "shop",
            "index.html",
            "Accept the cookies, then add the most expensive Office product that costs at most "
            "$30 to the cart.",
            "filters",
            _cart_is({priciest["id"]: 1}),
            (
                _ACCEPT,
                _select("Category", "office"),
                _fill("spinbutton", "Max price ($)", "30"),
                _select("Sort by", "price-desc"),
                _click("button", "Apply filters"),
                _add(priciest["name"], "Desk Organizer"),
                _done(),
            ),
        ),
        Task(
            "shop-red-mug-qty-3",
            "shop",
            "index.html",
            "Accept the cookies, add a Red Mug to the cart, then open the cart and set its "
            "quantity to 3.",
            "cart",
            _cart_is({"red-mug": 3}),
            (
                _ACCEPT,
                *_search_shop("red mug"),
                _add("Red Mug", "Red Mug Set"),
                _CART,
                _fill("spinbutton", "Quantity for Red Mug", "3"),
                _done(),
            ),
        ),
        Task(
            "shop-remove-blue-mug",
            "shop",
            "index.html",
            "Accept the cookies, add a Notebook A5 and a Blue Mug to the cart, then remove the "
            "Blue Mug so that only the notebook is left.",
            "cart",
            _cart_is({"notebook-a5": 1}),
            (
                _ACCEPT,
                *_search_shop("notebook"),
                _add("Notebook A5", "Notebook A4"),
                *_search_shop("blue mug", enter=True),
                _add("Blue Mug"),
                _CART,
                _click("button", "Remove Blue Mug"),
                _done(),
            ),
        ),
        Task(
            "shop-bottle-product-page",
            "shop",
            "index.html",
            "Accept the cookies, open the product page of the Water Bottle 1L and add 2 of them "
            "to the cart from that page.",
            "product",
            _cart_is({"water-bottle-1l": 2}),
            (
                _ACCEPT,
                *_search_shop("water bottle"),
                _click("link", "Water Bottle 1L", decoy=_t("link", "Water Bottle")),
                _fill("spinbutton", "Quantity", "2"),
                _click("button", "Add to cart"),
                _done(),
            ),
        ),
        Task(
            "shop-checkout-kettle",
            "shop",
            "index.html",
            "Accept the cookies and buy one stovetop Tea Kettle: add it to the cart, go to the "
            "cart, check out and place the order.",
            "checkout",
            _ordered({"tea-kettle": 1}),
            (
                _ACCEPT,
                *_search_shop("tea kettle"),
                _add("Tea Kettle", "Tea Kettle Electric"),
                _CART,
                _click("link", "Checkout"),
                _click("button", "Place order"),
                _done(),
            ),
        ),
        Task(
            "shop-cart-total",
            "shop",
            "index.html",
            "Accept the cookies, add a Scented Candle and a Photo Frame to the cart, open the "
            "cart and answer with the cart total.",
            "lookup",
            _all(
                _cart_is({"scented-candle": 1, "photo-frame": 1}),
                _answer(lambda s: f"${s.get('cartTotal', 0):.2f}"),
            ),
            (
                _ACCEPT,
                *_search_shop("candle"),
                _add("Scented Candle"),
                *_search_shop("photo frame"),
                _add("Photo Frame", "Photo Frame 10x15"),
                _CART,
                _done(r"Cart total: (\$\d+\.\d{2})"),
            ),
        ),
    ]


def _docs_tasks() -> list[Task]:
    return [
        Task(
            "docs-search-proxy",
            "docs",
            "index.html",
            "Search the docs for 'proxy' and open the page that explains how to configure a proxy.",
            "search",
            _all(_searched("proxy"), _docs_at("network-configuration")),
            (
                *_search_docs("proxy"),
                _click(
                    "link",
                    "Network configuration",
                    within=_RESULTS,
                    decoy=_t("link", "Network troubleshooting", within=_RESULTS),
                ),
                _done(),
            ),
        ),
        Task(
            "docs-env-vars",
            "docs",
            "index.html",
            "Open the Configuration reference and jump to its 'Environment variables' section.",
            "navigation",
            _docs_at("configuration-reference", "environment-variables"),
            (
                _click(
                    "link",
                    "Configuration reference",
                    within=_SIDEBAR,
                    decoy=_t("link", "Configuration", within=_SIDEBAR),
                ),
                _click("link", "Environment variables", within=_ON_PAGE),
                _done(),
            ),
        ),
        Task(
            "docs-cli-reference",
            "docs",
            "index.html",
            "Open the CLI reference from the sidebar.",
            "navigation",
            _docs_at("cli-reference"),
            (
                _click("link", "CLI reference", within=_SIDEBAR, decoy=_t("link", "API reference")),
                _done(),
            ),
        ),
        Task(
            "docs-hook-order",
            "docs",
            "index.html",
            "Search the docs for 'hooks' and open the Writing plugins page at its 'Hook order' "
            "section.",
            "search",
            _all(_searched("hooks"), _docs_at("writing-plugins", "hook-order")),
            (
                *_search_docs("hooks", enter=True),
                _click(
                    "link",
                    "Writing plugins",
                    within=_RESULTS,
                    decoy=_t("link", "Plugins", within=_RESULTS),
                ),
                _click("link", "Hook order", within=_ON_PAGE),
                _done(),
            ),
        ),
        Task(
            "docs-default-port",
            "docs",
            "index.html",
            "What is the default port of the Lumen dev server? Find it in the docs and give it "
            "as the answer.",
            "lookup",
            _all(_visited("dev-server"), _answer("8080")),
            (
                _click("link", "Dev server", within=_SIDEBAR, decoy=_t("link", "Deployment")),
                _done(r"default port is (\d+)"),
            ),
        ),
        Task(
            "docs-upgrading",
            "docs",
            "index.html",
            "Open the Installation guide and go to its 'Upgrading' section.",
            "navigation",
            _docs_at("installation", "upgrading"),
            (
                _click("link", "Installation", within=_SIDEBAR),
                _click("link", "Upgrading", within=_ON_PAGE),
                _done(),
            ),
        ),
        Task(
            "docs-changelog-2-1-0",
            "docs",
            "index.html",
            "Open the Changelog and jump to the notes for version 2.1.0.",
            "navigation",
            _docs_at("changelog", "v2-1-0"),
            (
                _click("link", "Changelog", within=_SIDEBAR),
                _click(
                    "link",
                    "2.1.0",
                    within=_ON_PAGE,
                    decoy=_t("link", "2.10.0", within=_ON_PAGE),
                ),
                _done(),
            ),
        ),
        Task(
            "docs-next-after-plugins",
            "docs",
            "index.html",
            "Open the Plugins guide, then follow its 'Next' link at the bottom to the page "
            "after it.",
            "navigation",
            _all(_visited("plugins"), _docs_at("writing-plugins")),
            (
                _click("link", "Plugins", within=_SIDEBAR),
                _click(
                    "link",
                    "Next:",
                    match="prefix",
                    decoy=_t("link", "Previous:", match="prefix"),
                ),
                _done(),
            ),
        ),
    ]


def _booking_tasks() -> list[Task]:
    return [
        Task(
            "booking-standard",
            "booking",
            "index.html",
            "Book a Standard room for 2 guests from 2026-07-10 to 2026-07-12 for Ana Silva, "
            "email ana.silva@example.com.",
            "forms",
            _booked(
                name="Ana Silva",
                email="ana.silva@example.com",
                checkin="2026-07-10",
                checkout="2026-07-12",
                guests=2,
                room="standard",
            ),
            (
                *_booking(
                    name="Ana Silva",
                    email="ana.silva@example.com",
                    checkin="2026-07-10",
                    checkout="2026-07-12",
                    guests=2,
                    room="Standard",
                    decoy_room="Double",
                ),
                _done(),
            ),
        ),
        Task(
            "booking-double-deluxe",
            "booking",
            "index.html",
            "Book the Double Deluxe room for 3 guests from 2026-09-01 to 2026-09-04 for Omar "
            "Haddad, email omar.haddad@example.org.",
            "forms",
            _booked(
                name="Omar Haddad",
                email="omar.haddad@example.org",
                guests=3,
                room="double-deluxe",
                nights=3,
            ),
            (
                *_booking(
                    name="Omar Haddad",
                    email="omar.haddad@example.org",
                    checkin="2026-09-01",
                    checkout="2026-09-04",
                    guests=3,
                    room="Double Deluxe",
                    decoy_room="Double",
                ),
                _done(),
            ),
        ),
        Task(
            "booking-fix-email",
            "booking",
            "index.html",
            "Book a Standard room for 1 guest from 2026-10-03 to 2026-10-05 for Sam Lee. He "
            "wrote his email as 'sam.lee@example': enter it as written first. If the form "
            "rejects it, read the error, correct the address to sam.lee@example.com and book.",
            "validation",
            _all(
                _booked(name="Sam Lee", email="sam.lee@example.com", room="standard", guests=1),
                _error_seen("email"),
            ),
            (
                *_booking(
                    name="Sam Lee",
                    email="sam.lee@example",
                    checkin="2026-10-03",
                    checkout="2026-10-05",
                    guests=1,
                    room="Standard",
                ),
                _fill("textbox", "Email", "sam.lee@example.com"),
                _click("button", "Book now"),
                _done(),
            ),
        ),
        Task(
            "booking-fix-dates",
            "booking",
            "index.html",
            "Book a Double room for 2 guests for Mia Chen, email mia.chen@example.net. She "
            "wrote check-in 2026-08-05 and check-out 2026-08-03: enter them as written first. "
            "If the form rejects the dates, swap them and book.",
            "validation",
            _all(
                _booked(
                    name="Mia Chen", checkin="2026-08-03", checkout="2026-08-05", room="double"
                ),
                _error_seen("checkout"),
            ),
            (
                *_booking(
                    name="Mia Chen",
                    email="mia.chen@example.net",
                    checkin="2026-08-05",
                    checkout="2026-08-03",
                    guests=2,
                    room="Double",
                    decoy_room="Double Deluxe",
                ),
                _fill("textbox", "Check-in date", "2026-08-03"),
                _fill("textbox", "Check-out date", "2026-08-05"),
                _click("button", "Book now"),
                _done(),
            ),
        ),
        Task(
            "booking-room-for-four",
            "booking",
            "index.html",
            "Book a room for 4 guests from 2026-11-20 to 2026-11-23 for Lena Fischer, email "
            "lena.fischer@example.de. Choose the room type that sleeps 4 (the form lists how "
            "many each room sleeps).",
            "forms",
            _booked(name="Lena Fischer", guests=4, room="family-suite", nights=3),
            (
                *_booking(
                    name="Lena Fischer",
                    email="lena.fischer@example.de",
                    checkin="2026-11-20",
                    checkout="2026-11-23",
                    guests=4,
                    room="Family Suite",
                    decoy_room="Double Deluxe",
                ),
                _done(),
            ),
        ),
        Task(
            "booking-reference",
            "booking",
            "index.html",
            "Book a Double room for 2 guests from 2026-12-27 to 2026-12-30 for Tom Berg, email "
            "tom.berg@example.com, then answer with the booking reference shown on the "
            "confirmation page.",
            "lookup",
            _all(
                _booked(name="Tom Berg", room="double", checkin="2026-12-27"),
                _answer(lambda s: (s.get("confirmed") or {}).get("reference")),
            ),
            (
                *_booking(
                    name="Tom Berg",
                    email="tom.berg@example.com",
                    checkin="2026-12-27",
                    checkout="2026-12-30",
                    guests=2,
                    room="Double",
                    decoy_room="Double Deluxe",
                ),
                _done(r"HB-[A-Z0-9]{6}"),
            ),
        ),
        Task(
            "booking-accept-terms",
            "booking",
            "index.html",
            "Book a Standard room for 1 guest from 2026-06-12 to 2026-06-13 for Ines Moreau, "
            "email ines.moreau@example.fr, with the special request 'Late arrival, around 23:00'.",
            "forms",
            _booked(name="Ines Moreau", requests="Late arrival, around 23:00", nights=1),
            (
                _fill("textbox", "Full name", "Ines Moreau"),
                _fill("textbox", "Email", "ines.moreau@example.fr"),
                _fill("textbox", "Check-in date", "2026-06-12"),
                _fill("textbox", "Check-out date", "2026-06-13"),
                _click("radio", "Standard", decoy=_t("radio", "Double")),
                _fill("textbox", "Special requests (optional)", "Late arrival, around 23:00"),
                _click("checkbox", "I accept the terms and conditions"),
                _click("button", "Book now"),
                _done(),
            ),
        ),
    ]


TASKS: tuple[Task, ...] = (*_shop_tasks(), *_docs_tasks(), *_booking_tasks())
TASKS_BY_ID: dict[str, Task] = {t.id: t for t in TASKS}
