"""Checking a story: render the HTML in Chromium, run axe-core, then the intent's structural
and keyboard assertions; the result carries a :class:`~pytest_teach.Reward`.

The reward's components, each in [0, 1]:

- ``a11y``: axe-core's verdict, ``1 - sum of a penalty per violated rule`` (critical 0.4,
  serious 0.25, moderate 0.1, minor 0.05), floored at 0.
- ``semantics``: the share of semantic checks passed (the right elements and roles, accessible
  names, ARIA relationships, no click handlers on non-interactive elements).
- ``keyboard``: the share of keyboard checks passed (Tab reaches the control, Enter/Space/arrows/
  Escape do what the intent says, focus goes where it should).
- ``assertions``: the share of the intent's state and content assertions passed (initial states,
  disabled/loading/error states, the visible text, no uncaught script errors, no script still
  running after ``CHECK_DEADLINE_S``).

``reward = 0.2 a11y + 0.3 semantics + 0.3 keyboard + 0.2 assertions`` (:data:`REWARD_WEIGHTS`).
A story **passes** when every semantic, keyboard and assertion check passes and axe-core finds no
critical or serious violation; moderate and minor violations only lower ``a11y``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import InfrastructureError
from ...reward import Reward
from ._intents import Intent
from ._page import INTERACTIVE_ROLES, Node, Snapshot, StoryPage, _first_line

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = [
    "AXE_PENALTIES",
    "BLOCKING_IMPACTS",
    "COMPONENTS",
    "REWARD_WEIGHTS",
    "CheckResult",
    "StoryResult",
    "check_story",
]

COMPONENTS = ("a11y", "semantics", "keyboard", "assertions")
#: The weights of :func:`check_story`'s reward components.
REWARD_WEIGHTS: dict[str, float] = {
    "a11y": 0.2,
    "semantics": 0.3,
    "keyboard": 0.3,
    "assertions": 0.2,
}
#: What one violated axe-core rule takes off ``a11y``, by impact.
AXE_PENALTIES: dict[str, float] = {"critical": 0.4, "serious": 0.25, "moderate": 0.1, "minor": 0.05}
#: axe-core impacts that fail a story.
BLOCKING_IMPACTS = ("critical", "serious")


@dataclass(frozen=True)
class CheckResult:
    """One assertion of a story check."""

    component: str
    check: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "component": self.component,
            "check": self.check,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class StoryResult:
    """The verdict on one generated HTML snippet for one intent."""

    intent: str
    reward: Reward
    passed: bool
    message: str
    #: axe-core violations: ``{"id", "impact", "help", "nodes"}``
    violations: tuple[dict[str, Any], ...] = ()
    checks: tuple[CheckResult, ...] = ()
    #: wall time of the check (not part of :meth:`to_dict`, which is deterministic)
    duration_ms: float = field(default=0.0, compare=False)

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready ``storyResult``: intent, passed, reward, components, weights, message,
        violations and every check."""
        return {
            "intent": self.intent,
            "passed": self.passed,
            "reward": self.reward.value,
            "components": dict(self.reward.components),
            "weights": dict(self.reward.weights),
            "message": self.message,
            "violations": [dict(v) for v in self.violations],
            "checks": [check.to_dict() for check in self.checks],
        }


class _Probe:
    """A story page plus the checks recorded so far; what each intent's check function uses."""

    def __init__(self, page: StoryPage, loaded: Snapshot) -> None:
        self.page = page
        self.results: list[CheckResult] = []
        #: the page as loaded, before any key press
        self.loaded = loaded
        self._unread: Snapshot | None = loaded

    def _record(self, component: str, check: str, ok: object, detail: str) -> bool:
        passed = bool(ok)
        self.results.append(CheckResult(component, check, passed, "" if passed else detail))
        return passed

    def semantics(self, check: str, ok: object, detail: str = "") -> bool:
        """Record a semantic check (elements, roles, names, ARIA relationships)."""
        return self._record("semantics", check, ok, detail)

    def keyboard(self, check: str, ok: object, detail: str = "") -> bool:
        """Record a keyboard check (focus and activation with keys)."""
        return self._record("keyboard", check, ok, detail)

    def assertion(self, check: str, ok: object, detail: str = "") -> bool:
        """Record a state or content assertion."""
        return self._record("assertions", check, ok, detail)

    def snap(self) -> Snapshot:
        """Read the page (the first read is :attr:`loaded`, taken with the axe-core run)."""
        snapshot, self._unread = self._unread or self.page.snapshot(), None
        return snapshot

    def tab_to(self, node: Node | None, snapshot: Snapshot) -> bool:
        return self.page.tab_to(node, snapshot)

    def press(self, key: str) -> Snapshot:
        return self.page.press(key)


def _focus_detail(snapshot: Snapshot | None, node: Node | None, what: str) -> str:
    if node is None:
        return f"no {what} to focus"
    if snapshot is None:
        return "not tried: an earlier step failed"
    if snapshot.lost:
        return snapshot.lost
    active = snapshot.active
    return f"focus is on {active.describe()}" if active else "focus is on the page body"


def _where(snapshot: Snapshot | None) -> str:
    if snapshot is None:
        return "not tried: an earlier step failed"
    return snapshot.lost


# -- the intents' checks ----------------------------------------------------------------------


def _button(p: _Probe) -> None:
    s = p.snap()
    button = s.find("button", r"save changes")
    p.semantics("a button named 'Save changes'", button, "no button named 'Save changes'")
    p.semantics("a live status region", s.live_regions, "no role=status or aria-live region")
    p.assertion("'Save changes' is shown", s.shows(r"save changes"))
    p.assertion("the button is enabled", button and not button.disabled)
    focused = p.keyboard(
        "Tab focuses the button", p.tab_to(button, s), _focus_detail(s, button, "button")
    )
    after = p.press("Enter") if focused else None
    p.keyboard(
        "Enter shows 'Saved' in the status region",
        after and after.announces(r"\bsaved\b"),
        _where(after) or "no live region says 'Saved'",
    )


def _toggle_switch(p: _Probe) -> None:
    s = p.snap()
    toggle = s.find(("switch", "checkbox"), r"dark mode") or s.find("button", r"dark mode")
    p.semantics(
        "a switch, checkbox or button named 'Dark mode'", toggle, "no control named 'Dark mode'"
    )
    state = toggle.on if toggle else None
    p.semantics(
        "its on/off state is exposed (aria-checked, aria-pressed or a native checkbox)",
        state is not None,
        f"{toggle.describe()} has no aria-checked/aria-pressed state" if toggle else "no control",
    )
    p.assertion("it is off at first", state is False, f"state is {state!r}")
    p.assertion("'Dark mode' is shown", s.shows(r"dark mode"))
    focused = p.keyboard(
        "Tab focuses the switch", p.tab_to(toggle, s), _focus_detail(s, toggle, "switch")
    )
    on = p.press("Space") if focused else None
    turned_on = on.get(toggle) if on else None
    p.keyboard(
        "Space turns it on",
        turned_on and turned_on.on is True,
        _where(on) or f"state after Space: {turned_on.on if turned_on else 'gone'!r}",
    )
    off = p.press("Space") if turned_on and turned_on.on else None
    turned_off = off.get(toggle) if off else None
    p.keyboard(
        "Space again turns it off",
        turned_off and turned_off.on is False,
        _where(off) or f"state after Space: {turned_off.on if turned_off else 'gone'!r}",
    )


def _card(p: _Probe) -> None:
    s = p.snap()
    card = s.find("article")
    p.semantics("the card is an <article>", card, "no article element")
    heading = s.find("heading", r"trail running shoes", within=card)
    p.semantics(
        "the product name is a heading in the card", heading, "no heading 'Trail Running Shoes'"
    )
    images = [
        node for node in s.nodes if node.tag == "img" and (card is None or s.inside(node, card))
    ]
    p.semantics(
        "the product image has alt text",
        images and all((node.attr("alt") or "").strip() for node in images),
        "no <img>" if not images else "an <img> has no alt text",
    )
    add = s.find("button", r"add to cart", within=card)
    p.semantics("an 'Add to cart' button in the card", add, "no button 'Add to cart' in an article")
    p.assertion("the name 'Trail Running Shoes' is shown", s.shows(r"trail running shoes"))
    p.assertion("the price '$89' is shown", s.shows(r"\$\s?89\b"))
    focused = p.keyboard(
        "Tab focuses 'Add to cart'", p.tab_to(add, s), _focus_detail(s, add, "button")
    )
    after = p.press("Enter") if focused else None
    p.keyboard(
        "Enter shows 'Added to cart' in a status region",
        after and after.announces(r"added to cart"),
        _where(after) or "no live region says 'Added to cart'",
    )


def _dialog(p: _Probe) -> None:
    s = p.snap()
    dialogs = ("dialog", "alertdialog")
    opener = s.find("button", r"delete file", visible=True)
    p.semantics("a visible button named 'Delete file'", opener, "no visible button 'Delete file'")
    p.assertion(
        "the dialog is hidden until opened",
        not s.all(dialogs, visible=True) and not s.shows(r"delete file\?"),
    )
    focused = p.keyboard(
        "Tab focuses 'Delete file'", p.tab_to(opener, s), _focus_detail(s, opener, "button")
    )
    opened = p.press("Enter") if focused else None
    dialog = opened.find(dialogs, visible=True) if opened else None
    p.keyboard("Enter opens the dialog", dialog, _where(opened) or "no visible dialog after Enter")
    shown = opened if dialog else s
    dialog = dialog or s.find(dialogs)
    p.semantics("a dialog element (role dialog or alertdialog)", dialog, "no dialog role")
    p.semantics(
        "the dialog is named by its title",
        dialog and "delete" in dialog.name.lower(),
        f"accessible name {dialog.name!r}" if dialog else "no dialog",
    )
    p.semantics(
        "the dialog is modal (aria-modal='true' or showModal())",
        dialog and (dialog.modal or dialog.aria("modal") == "true"),
        "no aria-modal and not opened with showModal()",
    )
    p.semantics(
        "the dialog has 'Cancel' and 'Delete' buttons",
        dialog
        and shown.find("button", r"^\s*cancel\b", within=dialog)
        and shown.find("button", r"^\s*delete\b", within=dialog),
        "missing a 'Cancel' or 'Delete' button inside the dialog",
    )
    inside = (
        opened
        and dialog
        and opened.active
        and (opened.inside(opened.active, dialog) or opened.focused(dialog))
    )
    p.keyboard(
        "opening moves focus into the dialog", inside, _focus_detail(opened, dialog, "dialog")
    )
    closed = p.press("Escape") if opened and opened.find(dialogs, visible=True) else None
    p.keyboard(
        "Escape closes the dialog",
        closed and not closed.lost and not closed.all(dialogs, visible=True),
        _where(closed) or "the dialog is still shown after Escape",
    )
    p.keyboard(
        "closing returns focus to 'Delete file'",
        closed and not closed.all(dialogs, visible=True) and closed.focused(opener),
        _focus_detail(closed, opener, "button"),
    )


def _tabs(p: _Probe) -> None:
    s = p.snap()
    tablist = s.find("tablist")
    p.semantics("a tablist", tablist, "no role=tablist")
    tabs = [
        s.find("tab", rf"^\s*{name}\b", within=tablist) for name in ("overview", "specs", "reviews")
    ]
    p.semantics(
        "tabs 'Overview', 'Specs' and 'Reviews' in the tablist",
        all(tabs),
        "missing role=tab elements",
    )
    panels = [s.get(_ref_node(s, tab, "aria-controls")) if tab else None for tab in tabs]
    p.semantics(
        "each tab's aria-controls names its tabpanel",
        all(panel and panel.role == "tabpanel" for panel in panels),
        "a tab's aria-controls doesn't name a role=tabpanel element",
    )
    p.assertion(
        "'Overview' is selected first, the others not",
        all(tabs)
        and tabs[0].aria("selected") == "true"
        and all(t.aria("selected") != "true" for t in tabs[1:]),
        "aria-selected is not true on Overview alone",
    )
    p.assertion(
        "only the selected panel is shown",
        all(panels) and panels[0].visible and not any(panel.visible for panel in panels[1:]),
        "panel visibility doesn't follow the selection",
    )
    focused = p.keyboard(
        "Tab focuses the selected tab", p.tab_to(tabs[0], s), _focus_detail(s, tabs[0], "tab")
    )
    moved = p.press("ArrowRight") if focused else None
    arrowed = p.keyboard(
        "ArrowRight moves focus to 'Specs'",
        moved and moved.focused(tabs[1]),
        _focus_detail(moved, tabs[1], "tab 'Specs'"),
    )
    chosen = p.press("Enter") if arrowed else None
    specs, overview = (chosen.get(tabs[1]), chosen.get(tabs[0])) if chosen else (None, None)
    specs_panel, overview_panel = (
        (chosen.get(panels[1]), chosen.get(panels[0])) if chosen else (None, None)
    )
    p.keyboard(
        "'Specs' is then selected and shows its panel",
        specs and specs.aria("selected") == "true" and overview and overview.aria("selected") != "true"
        and specs_panel and specs_panel.visible and not (overview_panel and overview_panel.visible),
        _where(chosen) or "selection or panels did not follow",
    )  # fmt: skip
    out = p.press("Tab") if chosen else None
    p.keyboard(
        "Tab then leaves the tab list (one Tab stop)",
        out and not out.lost and (out.active is None or out.active.role != "tab"),
        _focus_detail(out, tabs[1], "tab"),
    )


def _form_field_error(p: _Probe) -> None:
    s = p.snap()
    field = s.find(("textbox", "searchbox", "combobox"), r"\bemail\b")
    p.semantics(
        "a text field labelled 'Email'", field, "no text field whose accessible name is 'Email'"
    )
    p.semantics(
        "it is marked invalid (aria-invalid='true')",
        field and field.aria("invalid") == "true",
        "aria-invalid is not 'true'",
    )
    messages = field.targets("aria-describedby", "aria-errormessage") if field else []
    p.semantics(
        "the error message is tied to it (aria-describedby or aria-errormessage)",
        any("valid email" in ref.text.lower() for ref in messages),
        "no aria-describedby/aria-errormessage reference to the error text",
    )
    p.assertion("'Enter a valid email address' is shown", s.shows(r"enter a valid email address"))
    p.assertion("its value is 'not-an-email'", field and field.value == "not-an-email")
    p.assertion(
        "it is required",
        field and (field.attr("required") is not None or field.aria("required") == "true"),
        "no required attribute or aria-required='true'",
    )
    focused = p.keyboard(
        "Tab focuses the field", p.tab_to(field, s), _focus_detail(s, field, "field")
    )
    typed = p.page.type("x") if focused else None
    after = typed.get(field) if typed else None
    p.keyboard(
        "typing edits the field",
        after and after.value != "not-an-email",
        _where(typed) or "the value did not change",
    )


def _nav_menu(p: _Probe) -> None:
    s = p.snap()
    nav = s.find("navigation")
    p.semantics("a navigation landmark", nav, "no <nav> or role=navigation")
    button = s.find("button", r"\bmenu\b", within=nav) if nav else s.find("button", r"\bmenu\b")
    p.semantics(
        "a 'Menu' button in the navigation",
        button and nav,
        "no button 'Menu' inside a navigation landmark",
    )
    controls = button.targets("aria-controls") if button else []
    p.semantics(
        "the button has aria-expanded and aria-controls naming the list",
        button
        and button.aria("expanded") in ("true", "false")
        and any(ref.key for ref in controls),
        "aria-expanded or a resolvable aria-controls is missing",
    )
    names = ("home", "products", "about", "contact")
    links = [s.find("link", rf"^\s*{name}\s*$") for name in names]
    p.semantics(
        "links Home, Products, About and Contact in a list in the navigation",
        all(
            link
            and link.attr("href") is not None
            and s.has_ancestor(link, "listitem")
            and s.inside(link, nav)
            for link in links
        ),
        "the four links (a[href] in li elements inside the nav) are not all there",
    )
    p.assertion(
        "the links are hidden at first (aria-expanded='false')",
        button
        and button.aria("expanded") == "false"
        and not any(link and link.visible for link in links),
        "the menu starts expanded",
    )
    focused = p.keyboard(
        "Tab focuses 'Menu'", p.tab_to(button, s), _focus_detail(s, button, "button")
    )
    opened = p.press("Enter") if focused else None
    shown = opened.get(button) if opened else None
    first = opened.get(links[0]) if opened else None
    p.keyboard(
        "Enter expands the menu (aria-expanded='true', links shown)",
        shown and shown.aria("expanded") == "true" and first and first.visible,
        _where(opened) or "the links are not shown or aria-expanded is not 'true'",
    )
    nxt = p.press("Tab") if first and first.visible else None
    p.keyboard(
        "Tab then reaches 'Home'",
        nxt and nxt.focused(links[0]),
        _focus_detail(nxt, links[0], "link"),
    )
    back = p.press("Shift+Tab") if nxt else None
    closed = p.press("Space") if back and back.focused(button) else None
    hidden = closed.get(button) if closed else None
    gone = closed.get(links[0]) if closed else None
    p.keyboard(
        "Shift+Tab back to 'Menu' and Space collapses it",
        hidden and hidden.aria("expanded") == "false" and not (gone and gone.visible),
        _where(closed) or "still expanded after Space",
    )


_QUESTIONS = ("how long does shipping take", "can i return an item", "do you ship internationally")


def _accordion(p: _Probe) -> None:
    s = p.snap()
    buttons = [s.find("button", question) for question in _QUESTIONS]
    p.semantics("a button for each question", all(buttons), "not every question is a button")
    p.semantics(
        "each question button is inside a heading",
        all(s.has_ancestor(b, "heading") for b in buttons),
        "a question button is not inside a heading",
    )
    p.semantics(
        "each button has aria-expanded and aria-controls naming its answer",
        all(b and b.aria("expanded") in ("true", "false") for b in buttons)
        and all(_ref(b, "aria-controls") for b in buttons),
        "aria-expanded or a resolvable aria-controls is missing",
    )
    p.assertion(
        "every answer is collapsed at first",
        all(b and b.aria("expanded") == "false" for b in buttons)
        and not any(_ref(b, "aria-controls", visible=True) for b in buttons),
        "an answer starts expanded",
    )
    p.assertion("the questions are shown", all(s.shows(question) for question in _QUESTIONS))
    first = buttons[0]
    focused = p.keyboard(
        "Tab focuses the first question", p.tab_to(first, s), _focus_detail(s, first, "button")
    )
    opened = p.press("Enter") if focused else None
    now = opened.get(first) if opened else None
    p.keyboard(
        "Enter expands its answer",
        now and now.aria("expanded") == "true" and _ref(now, "aria-controls", visible=True),
        _where(opened) or "aria-expanded or the answer's visibility did not change",
    )
    closed = p.press("Space") if now and now.aria("expanded") == "true" else None
    again = closed.get(first) if closed else None
    p.keyboard(
        "Space collapses it again",
        again
        and again.aria("expanded") == "false"
        and not _ref(again, "aria-controls", visible=True),
        _where(closed) or "still expanded after Space",
    )
    nxt = p.press("Tab") if closed else None
    p.keyboard(
        "Tab moves to the next question",
        nxt and nxt.focused(buttons[1]),
        _focus_detail(nxt, buttons[1], "button"),
    )


def _checkbox_group(p: _Probe) -> None:
    s = p.snap()
    group = s.find(("group", "radiogroup"), r"notifications")
    p.semantics(
        "a group named 'Notifications'",
        group,
        "no fieldset/legend or role=group named 'Notifications'",
    )
    boxes = [s.find("checkbox", rf"^\s*{name}\s*$") for name in ("email", "sms", "push")]
    p.semantics(
        "checkboxes Email, SMS and Push in the group",
        all(boxes) and all(s.inside(box, group) for box in boxes),
        "the three checkboxes are not all there, inside the group",
    )
    p.assertion(
        "'Email' is checked, 'SMS' and 'Push' are not",
        all(boxes) and [box.on for box in boxes] == [True, False, False],
        f"states: {[box.on if box else None for box in boxes]}",
    )
    focused = p.keyboard(
        "Tab focuses 'Email'", p.tab_to(boxes[0], s), _focus_detail(s, boxes[0], "checkbox")
    )
    toggled = p.press("Space") if focused else None
    email = toggled.get(boxes[0]) if toggled else None
    p.keyboard(
        "Space unchecks 'Email'", email and email.on is False, _where(toggled) or "still checked"
    )
    moved = p.press("Tab") if toggled else None
    at_sms = p.keyboard(
        "Tab moves to 'SMS'",
        moved and moved.focused(boxes[1]),
        _focus_detail(moved, boxes[1], "checkbox"),
    )
    checked = p.press("Space") if at_sms else None
    sms = checked.get(boxes[1]) if checked else None
    p.keyboard("Space checks 'SMS'", sms and sms.on is True, _where(checked) or "not checked")


def _radio_group(p: _Probe) -> None:
    s = p.snap()
    group = s.find(("radiogroup", "group"), r"shipping speed")
    p.semantics(
        "a radio group named 'Shipping speed'",
        group,
        "no fieldset/legend or role=radiogroup named 'Shipping speed'",
    )
    radios = [s.find("radio", rf"^\s*{name}\b") for name in ("standard", "express", "overnight")]
    p.semantics(
        "radios Standard, Express and Overnight in the group",
        all(radios) and all(s.inside(radio, group) for radio in radios),
        "the three radios are not all there, inside the group",
    )
    p.assertion(
        "'Standard' is selected, the others are not",
        all(radios) and [radio.on for radio in radios] == [True, False, False],
        f"states: {[radio.on if radio else None for radio in radios]}",
    )
    focused = p.keyboard(
        "Tab focuses 'Standard'", p.tab_to(radios[0], s), _focus_detail(s, radios[0], "radio")
    )
    moved = p.press("ArrowDown") if focused else None
    express, standard = (moved.get(radios[1]), moved.get(radios[0])) if moved else (None, None)
    p.keyboard(
        "ArrowDown moves focus to 'Express' and selects it",
        moved
        and moved.focused(radios[1])
        and express
        and express.on is True
        and standard
        and standard.on is False,
        _where(moved) or "focus or selection did not move to Express",
    )
    out = p.press("Tab") if moved else None
    p.keyboard(
        "Tab then leaves the group (one Tab stop)",
        out and not out.lost and (out.active is None or out.active.role != "radio"),
        _focus_detail(out, radios[2], "radio"),
    )


def _loading_button(p: _Probe) -> None:
    s = p.snap()
    button = s.find("button", r"submit order")
    p.semantics("a button named 'Submit order'", button, "no button 'Submit order'")
    p.semantics("a live status region", s.live_regions, "no role=status or aria-live region")
    p.assertion(
        "it is not busy or disabled at first",
        button and button.aria("busy") != "true" and not button.disabled,
        "starts busy or disabled",
    )
    focused = p.keyboard(
        "Tab focuses the button", p.tab_to(button, s), _focus_detail(s, button, "button")
    )
    loading = p.press("Enter") if focused else None
    busy = loading.get(button) if loading else None
    p.keyboard(
        "Enter starts loading",
        busy and (busy.aria("busy") == "true" or busy.disabled or loading.announces(r"submitting")),
        _where(loading) or "nothing changed after Enter",
    )
    p.assertion("while loading it is busy (aria-busy='true')", busy and busy.aria("busy") == "true")
    p.assertion(
        "while loading it is unavailable (aria-disabled or disabled)", busy and busy.disabled
    )
    p.assertion(
        "the status region announces 'Submitting order'",
        loading and loading.announces(r"submitting order"),
    )
    again = p.press("Enter") if busy and busy.aria("busy") == "true" else None
    same = again.get(button) if again else None
    p.keyboard(
        "a second Enter changes nothing",
        again and same and same.aria("busy") == "true" and loading
        and [n.text for n in again.live_regions] == [n.text for n in loading.live_regions],
        _where(again) or "the state changed on the second activation",
    )  # fmt: skip


def _disabled_button(p: _Probe) -> None:
    s = p.snap()
    title = s.find(("textbox", "searchbox"), r"post title")
    p.semantics("a text field labelled 'Post title'", title, "no text field named 'Post title'")
    button = s.find("button", r"^\s*publish\b")
    p.semantics("a button named 'Publish'", button, "no button 'Publish'")
    p.semantics("a live status region", s.live_regions, "no role=status or aria-live region")
    p.assertion(
        "the button is exposed as disabled while the title is empty",
        button and button.disabled,
        f"{button.describe()} is neither disabled nor aria-disabled='true'"
        if button
        else "no button",
    )
    target = button or next(
        (n for n in s.nodes if n.attr("onclick") is not None and "publish" in n.text.lower()), None
    )
    clicked = p.page.click(target) if target else None
    p.assertion(
        "clicking it while disabled does nothing",
        clicked and not clicked.lost and not clicked.shows(r"\bpublished\b"),
        _where(clicked) or "the click published",
    )
    if button is not None and button.tabbable:
        reached = p.tab_to(button, s)
        pressed = p.press("Enter") if reached else None
        spaced = p.press("Space") if pressed else None
        inert = reached and spaced and not spaced.lost and not spaced.shows(r"\bpublished\b")
        detail = (
            "Enter or Space published while disabled" if reached else "focusable but not reachable"
        )
    else:
        inert, detail = button is not None, "no button"
    p.keyboard("Enter and Space do nothing while it is disabled", inert, detail)
    now = p.snap()
    focused = p.keyboard(
        "Tab focuses 'Post title'",
        p.tab_to(now.get(title), now),
        _focus_detail(now, title, "field"),
    )
    typed = p.page.type("Hello") if focused else None
    enabled = typed.get(button) if typed else None
    p.assertion(
        "typing a title enables the button",
        enabled and not enabled.disabled,
        _where(typed) or "still disabled after typing a title",
    )
    reached = p.tab_to(enabled, typed) if enabled and typed else False
    done = p.press("Enter") if reached else None
    p.keyboard(
        "Tab reaches the enabled button and Enter shows 'Published'",
        done and done.announces(r"\bpublished\b"),
        _where(done) if done else _focus_detail(typed, enabled, "button"),
    )


def _alert(p: _Probe) -> None:
    s = p.snap()
    alert = s.find("alert")
    p.semantics("an element with role='alert'", alert, "no role=alert")
    dismiss = s.find("button", r"dismiss", within=alert) or s.find("button", r"dismiss")
    p.semantics("a 'Dismiss' button", dismiss, "no button named 'Dismiss'")
    p.assertion("the alert text is shown", s.shows(r"payment failed: your card was declined"))
    p.assertion(
        "the text is inside the alert",
        alert and "payment failed" in alert.text.lower(),
        "the message is not inside the role=alert element",
    )
    focused = p.keyboard(
        "Tab focuses 'Dismiss'", p.tab_to(dismiss, s), _focus_detail(s, dismiss, "button")
    )
    after = p.press("Enter") if focused else None
    p.keyboard(
        "Enter dismisses the alert",
        after
        and not after.lost
        and not after.all("alert", visible=True)
        and not after.shows(r"payment failed"),
        _where(after) or "the alert is still shown",
    )


def _breadcrumb(p: _Probe) -> None:
    s = p.snap()
    nav = s.find("navigation", r"breadcrumb")
    p.semantics("a navigation landmark named 'Breadcrumb'", nav, "no nav named 'Breadcrumb'")
    lists = [n for n in s.all("list", within=nav) if n.tag == "ol"] if nav else []
    p.semantics("an ordered list (<ol>) in it", lists, "no <ol> inside the breadcrumb nav")
    home, products = s.find("link", r"^\s*home\s*$"), s.find("link", r"^\s*products\s*$")
    p.semantics(
        "'Home' and 'Products' are links",
        home and products and home.attr("href") is not None and products.attr("href") is not None,
        "missing a[href] links for Home and Products",
    )
    current = [
        n
        for n in s.nodes
        if n.aria("current") == "page" and "running shoes" in (n.name or n.text).lower()
    ]
    p.semantics(
        "'Running shoes' is marked aria-current='page'",
        current,
        "no aria-current='page' on 'Running shoes'",
    )
    p.assertion(
        "the trail reads Home, Products, Running shoes", s.shows(r"home\W+products\W+running shoes")
    )
    p.assertion(
        "the current page is the last item",
        current and all(not n.aria("current") for n in s.nodes if n.key != current[0].key),
        "aria-current is missing or on more than one item",
    )
    first = p.keyboard("Tab focuses 'Home'", p.tab_to(home, s), _focus_detail(s, home, "link"))
    nxt = p.press("Tab") if first else None
    p.keyboard(
        "Tab then focuses 'Products'",
        nxt and nxt.focused(products),
        _focus_detail(nxt, products, "link"),
    )


def _search_field(p: _Probe) -> None:
    s = p.snap()
    landmark = s.find("search")
    p.semantics("a search landmark (role='search' or <search>)", landmark, "no search landmark")
    field = s.find(("searchbox", "textbox", "combobox"), r"search products")
    p.semantics(
        "a field labelled 'Search products' in it",
        field and s.inside(field, landmark),
        "no field named 'Search products' in the landmark",
    )
    p.semantics(
        "a 'Search' button", s.find("button", r"^\s*search\s*$"), "no button named 'Search'"
    )
    p.semantics("a live status region", s.live_regions, "no role=status or aria-live region")
    p.assertion(
        "the label 'Search products' is shown",
        s.shows(r"search products"),
        "no visible label (a placeholder is not one)",
    )
    p.assertion("the field starts empty", field and not field.value, "the field is not empty")
    focused = p.keyboard(
        "Tab focuses the field", p.tab_to(field, s), _focus_detail(s, field, "field")
    )
    typed = p.page.type("mugs") if focused else None
    done = p.press("Enter") if typed else None
    p.keyboard(
        "typing and Enter show 'Results for \"mugs\"' without leaving the page",
        done and not done.lost and done.url == s.url and done.announces(r"results for\W+mugs"),
        _where(done) or 'no live region says Results for "mugs"',
    )


def _ref(node: Node | None, attr: str, *, visible: bool = False) -> bool:
    """Whether ``node``'s ``attr`` names an existing element (a visible one, with ``visible``)."""
    refs = [ref for ref in node.targets(attr) if ref.key is not None] if node else []
    return any(ref.visible for ref in refs) if visible else bool(refs)


def _ref_node(s: Snapshot, node: Node | None, attr: str) -> Node | None:
    """The first element ``node``'s ``attr`` names, when the snapshot holds it."""
    if node is None:
        return None
    for ref in node.targets(attr):
        if ref.key is not None and ref.key in s.by_key:
            return s.by_key[ref.key]
    return None


_CHECKS: dict[str, Callable[[_Probe], None]] = {
    "button": _button,
    "toggle-switch": _toggle_switch,
    "card": _card,
    "dialog": _dialog,
    "tabs": _tabs,
    "form-field-error": _form_field_error,
    "nav-menu": _nav_menu,
    "accordion": _accordion,
    "checkbox-group": _checkbox_group,
    "radio-group": _radio_group,
    "loading-button": _loading_button,
    "disabled-button": _disabled_button,
    "alert": _alert,
    "breadcrumb": _breadcrumb,
    "search-field": _search_field,
}


# -- the verdict ------------------------------------------------------------------------------


def _share(results: list[CheckResult], component: str) -> float:
    mine = [r for r in results if r.component == component]
    return sum(r.passed for r in mine) / len(mine) if mine else 1.0


def _a11y(violations: list[dict[str, Any]]) -> float:
    penalty = sum(AXE_PENALTIES.get(v["impact"], AXE_PENALTIES["minor"]) for v in violations)
    return max(0.0, 1.0 - penalty)


def _message(results: list[CheckResult], violations: list[dict[str, Any]], passed: bool) -> str:
    failed = [r for r in results if not r.passed]
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    if passed:
        note = f"; axe: {len(violations)} minor/moderate violation(s)" if violations else ""
        return f"all {len(results)} checks passed, no serious axe violations{note}"
    parts = [
        f"{r.component}: {r.check}" + (f" ({r.detail})" if r.detail else "") for r in failed[:6]
    ]
    if len(failed) > 6:
        parts.append(f"... and {len(failed) - 6} more")
    if blocking:
        parts.append("axe: " + ", ".join(f"{v['id']} ({v['impact']})" for v in blocking))
    return f"{len(failed)} of {len(results)} checks failed; " + "; ".join(parts)


def _zero(intent: Intent, message: str, start: float) -> StoryResult:
    reward = Reward.of(dict.fromkeys(COMPONENTS, 0.0), weights=REWARD_WEIGHTS)
    return StoryResult(
        intent.id, reward, False, message, duration_ms=(time.perf_counter() - start) * 1000.0
    )


def check_story(page: Page, intent: Intent, html: str) -> StoryResult:
    """Check ``html`` against ``intent`` on ``page`` (a Playwright sync page) and grade it.

    The page is taken over: it gets axe-core as an init script, a CDP session, and aborts
    requests that leave it. Each call loads a fresh document (``about:blank``, then
    ``page.set_content``), so nothing one story's scripts leave behind reaches the next, and
    the check stops what could outlive it: a form submission, link or popup the story lets
    through is recorded as leaving the page, and a script still running after
    ``CHECK_DEADLINE_S`` is terminated. Empty ``html`` (an unparseable reply) and HTML that
    doesn't load score 0 on every component. See the module docstring for the components,
    weights and the pass rule.

    Raises:
        ValueError: ``intent`` has no check (its id is not one of :data:`INTENTS_BY_ID`).
        InfrastructureError: the page itself failed (it could not be reset, or crashed while
            loading for a reason other than the story's scripts).
    """
    start = time.perf_counter()
    check = _CHECKS.get(intent.id)
    if check is None:
        raise ValueError(f"no story check for intent {intent.id!r}; known: {', '.join(_CHECKS)}")
    if not html or not html.strip():
        return _zero(intent, "no HTML to check: the reply had no parseable HTML snippet", start)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with StoryPage(page) as story:
        try:
            story.load(intent.title, html)
        except PlaywrightError as exc:
            if not (story.watchdog.fired or isinstance(exc, PlaywrightTimeout)):
                raise InfrastructureError(f"the story page failed: {_first_line(exc)}") from exc
            why = "a script ran away" if story.watchdog.fired else _first_line(exc)
            return _zero(intent, f"the HTML did not load: {why}", start)
        violations, loaded = story.audit()
        probe = _Probe(story, loaded)
        check(probe)
        soup = [
            n for n in loaded.nodes
            if n.attr("onclick") is not None and n.role not in INTERACTIVE_ROLES
        ]  # fmt: skip
        probe.semantics(
            "no click handlers on non-interactive elements",
            not soup,
            "onclick on " + ", ".join(n.describe() for n in soup[:3]),
        )
        probe.assertion("no uncaught script errors", not story.errors, "; ".join(story.errors[:3]))
        probe.assertion(
            "no script runs away",
            not story.watchdog.fired,
            f"a script was still running after {story.watchdog.seconds:g} s and was stopped",
        )
    results = probe.results
    if violations is None:  # axe-core could not run: nothing vouches for the page
        probe.assertion("axe-core ran on the page", False, loaded.lost)
        violations = []
        a11y = 0.0
    else:
        a11y = _a11y(violations)
    components = {
        "a11y": a11y,
        "semantics": _share(results, "semantics"),
        "keyboard": _share(results, "keyboard"),
        "assertions": _share(results, "assertions"),
    }
    passed = all(r.passed for r in results) and not any(
        v["impact"] in BLOCKING_IMPACTS for v in violations
    )
    return StoryResult(
        intent=intent.id,
        reward=Reward.of(components, weights=REWARD_WEIGHTS),
        passed=passed,
        message=_message(results, violations, passed),
        violations=tuple(violations),
        checks=tuple(results),
        duration_ms=(time.perf_counter() - start) * 1000.0,
    )
