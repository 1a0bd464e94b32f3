"""Tool-selection scenario family.

An LLM planner receives a user query plus a registry of tools and must answer with the exact
set of tools to call, as JSON ``{"tools": [...]}``. This module holds everything the family
needs: the tool registry (:data:`TOOLS`), deterministic scenario generation
(:func:`generate_scenarios` / :data:`SCENARIOS`), the planner prompt (:func:`planner_messages`),
strict reply parsing (:func:`parse_plan`), grading (:func:`check`) and scripted baseline
planners (:func:`scripted_planner`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util import noise_level
from ..reward import Reward

if TYPE_CHECKING:
    from ..agents import Agent, ChatModel

__all__ = [
    "SCENARIOS",
    "SCRIPTED_NAMES",
    "TOOLS",
    "TOOLS_BY_NAME",
    "Check",
    "KeywordPlanner",
    "LLMPlanner",
    "NoisyPlanner",
    "OraclePlanner",
    "Plan",
    "PlanParseError",
    "Scenario",
    "ScriptedPlanner",
    "Tool",
    "check",
    "count_tokens",
    "format_plan",
    "generate_scenarios",
    "parse_plan",
    "planner_for",
    "planner_messages",
    "scripted_planner",
    "split_scenarios",
]


# --------------------------------------------------------------------------------------------
# Tool registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """One callable tool as shown to the planner.

    ``keywords`` are lowercase cue words (or short phrases) that a naive keyword matcher would
    associate with the tool; they are deliberately incomplete.
    """

    name: str
    description: str
    category: str
    keywords: tuple[str, ...]


TOOLS: tuple[Tool, ...] = (
    # information
    Tool(
        "weather_forecast",
        "Current conditions and the multi-day weather forecast for a location.",
        "information",
        ("weather", "forecast", "rain", "raining", "temperature", "snow", "sunny", "humidity"),
    ),
    Tool(
        "calculator",
        "Evaluate an arithmetic expression (percentages, roots, powers, unit-free math).",
        "information",
        ("calculate", "compute", "plus", "minus", "times", "divided", "percent", "square root"),
    ),
    Tool(
        "currency_convert",
        "Convert an amount between currencies at today's exchange rate.",
        "information",
        ("convert", "conversion", "exchange rate", "currency", "currencies"),
    ),
    Tool(
        "news_headlines",
        "Latest news headlines and articles on a topic.",
        "information",
        ("news", "headlines", "headline", "breaking"),
    ),
    Tool(
        "stock_quote",
        "Live stock quote (price, daily change) for a public company or ticker.",
        "information",
        ("stock", "stocks", "shares", "ticker", "share price", "nasdaq"),
    ),
    Tool(
        "translate_text",
        "Translate a piece of text into another language.",
        "information",
        ("translate", "translation", "translated"),
    ),
    # research
    Tool(
        "web_search",
        "General web search; returns the top pages for a query.",
        "research",
        ("web", "google", "online", "internet", "websites"),
    ),
    Tool(
        "encyclopedia_lookup",
        "Look up an encyclopedia (Wikipedia) article about a person, place, event or concept.",
        "research",
        ("wikipedia", "encyclopedia", "who was", "history of", "biography"),
    ),
    Tool(
        "docs_search",
        "Search the company's internal documentation, policies and runbooks.",
        "research",
        ("docs", "documentation", "policy", "runbook", "handbook", "wiki"),
    ),
    Tool(
        "paper_search",
        "Search academic papers and preprints (journals, arXiv) on a topic.",
        "research",
        ("paper", "papers", "study", "studies", "arxiv", "journal", "academic"),
    ),
    # e-commerce
    Tool(
        "product_search",
        "Search the store catalogue for products, with prices.",
        "e-commerce",
        ("buy", "shop", "store", "price", "prices", "cheapest", "deals"),
    ),
    Tool(
        "product_reviews",
        "Customer reviews and ratings for a product.",
        "e-commerce",
        ("review", "reviews", "rating", "ratings", "rated"),
    ),
    Tool(
        "cart_add",
        "Add a product to the user's shopping cart.",
        "e-commerce",
        ("cart", "basket", "add to cart"),
    ),
    Tool(
        "order_status",
        "Status and tracking of one of the user's orders.",
        "e-commerce",
        ("order", "orders", "package", "delivery", "shipped", "tracking", "track"),
    ),
    # productivity
    Tool(
        "calendar_create_event",
        "Create a calendar event (meeting, appointment, reminder) at a given time.",
        "productivity",
        ("schedule", "meeting", "appointment", "book", "remind", "reminder"),
    ),
    Tool(
        "calendar_list_events",
        "List the events on the user's calendar for a day or range.",
        "productivity",
        ("calendar", "agenda", "free", "busy"),
    ),
    Tool(
        "email_send",
        "Send an email on the user's behalf.",
        "productivity",
        ("email", "send", "mail", "write to"),
    ),
    Tool(
        "email_search",
        "Search the user's mailbox for existing emails.",
        "productivity",
        ("inbox", "emails", "mailbox"),
    ),
    # travel
    Tool(
        "maps_directions",
        "Route and travel time between two places (drive, walk, transit, bike).",
        "travel",
        ("directions", "route", "drive", "walk", "how far", "get to"),
    ),
    Tool(
        "maps_places",
        "Find places of a given kind near a location.",
        "travel",
        ("near", "nearby", "near me", "closest", "around here"),
    ),
    Tool(
        "flight_search",
        "Search flights between two cities on given dates.",
        "travel",
        ("flight", "flights", "fly", "airline", "plane"),
    ),
    Tool(
        "hotel_search",
        "Search hotels and other accommodation in a city.",
        "travel",
        ("hotel", "hotels", "accommodation", "room"),
    ),
)

TOOLS_BY_NAME: dict[str, Tool] = {tool.name: tool for tool in TOOLS}

# Tools a confused planner plausibly swaps for each other.
_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "weather_forecast": ("news_headlines", "web_search"),
    "calculator": ("currency_convert",),
    "currency_convert": ("calculator", "stock_quote"),
    "news_headlines": ("web_search", "stock_quote"),
    "stock_quote": ("news_headlines", "currency_convert"),
    "translate_text": ("web_search",),
    "web_search": ("encyclopedia_lookup", "news_headlines", "docs_search"),
    "encyclopedia_lookup": ("web_search", "paper_search"),
    "docs_search": ("web_search", "email_search"),
    "paper_search": ("web_search", "encyclopedia_lookup"),
    "product_search": ("product_reviews", "web_search"),
    "product_reviews": ("product_search", "web_search"),
    "cart_add": ("product_search", "order_status"),
    "order_status": ("email_search", "cart_add"),
    "calendar_create_event": ("calendar_list_events",),
    "calendar_list_events": ("calendar_create_event",),
    "email_send": ("email_search",),
    "email_search": ("email_send", "docs_search"),
    "maps_directions": ("maps_places",),
    "maps_places": ("maps_directions", "web_search"),
    "flight_search": ("hotel_search",),
    "hotel_search": ("flight_search", "maps_places"),
}


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One user query together with the exact (sorted) set of tools it requires."""

    id: str
    query: str
    expected: tuple[str, ...]
    category: str
    difficulty: str


_CITIES = (
    "Paris", "Tokyo", "Lisbon", "Nairobi", "Toronto", "Seoul", "Berlin", "Sydney", "Mumbai",
    "Chicago", "Oslo", "Lima", "Cairo", "Denver", "Madrid", "Hanoi", "Dublin", "Austin",
    "Istanbul", "Cape Town",
)  # fmt: skip
_PRODUCTS = (
    "trail running shoes", "noise-cancelling headphones", "espresso machine", "standing desk",
    "yoga mat", "mechanical keyboard", "4K monitor", "hiking backpack", "air fryer",
    "electric toothbrush", "robot vacuum", "wireless mouse", "cast-iron skillet", "e-reader",
    "camping tent", "smart thermostat", "blender", "office chair",
)  # fmt: skip
_PEOPLE = (
    "Ada Lovelace", "Nikola Tesla", "Marie Curie", "Alan Turing", "Frida Kahlo",
    "Nelson Mandela", "Grace Hopper", "Leonardo da Vinci", "Rosalind Franklin",
    "Srinivasa Ramanujan", "Hypatia", "Katherine Johnson", "Simon Bolivar", "Wangari Maathai",
)  # fmt: skip
_TOPICS = (
    "quantum error correction", "CRISPR gene editing", "coral reef bleaching",
    "sparse attention in language models", "microplastics in drinking water",
    "lithium battery recycling", "urban heat islands", "the gut microbiome and sleep",
    "protein folding prediction", "carbon capture materials",
    "bird migration and light pollution", "remote work productivity",
)  # fmt: skip
_SUBJECTS = (
    "the Roman Republic", "photosynthesis", "the Silk Road", "black holes",
    "the Treaty of Westphalia", "plate tectonics", "the printing press", "the Ottoman Empire",
    "the Apollo program", "the French Revolution", "the Great Barrier Reef",
    "the Byzantine Empire",
)  # fmt: skip
_DOCS = (
    "the onboarding checklist", "refunds for enterprise customers", "the deployment process",
    "travel expenses", "the API rate limits", "the VPN setup", "the on-call rotation",
    "code review guidelines", "security incidents", "parental leave",
)  # fmt: skip
_THREADS = (
    "the Q3 budget", "the hiring plan", "the vendor contract", "the product launch",
    "the board deck", "the design mockups", "the client proposal", "the team offsite",
)  # fmt: skip
_COMPANIES = (
    "Apple", "Tesla", "Microsoft", "NVIDIA", "Amazon", "Toyota", "Netflix", "Airbnb",
    "Shopify", "Siemens", "Samsung", "Spotify",
)  # fmt: skip
_CURRENCIES = ("USD", "EUR", "JPY", "GBP", "INR", "CAD", "AUD", "CHF", "MXN", "BRL", "SEK")
_LANGUAGES = (
    "Spanish", "French", "Japanese", "German", "Portuguese", "Korean", "Italian", "Swahili",
    "Dutch", "Turkish",
)  # fmt: skip
_PHRASES = (
    "where is the train station", "thank you for your help", "I am allergic to peanuts",
    "how much does this cost", "could you speak more slowly", "my luggage is lost",
    "we would like a table for four", "happy birthday", "I need a doctor",
    "the museum opens at nine",
)  # fmt: skip
_NEWS = (
    "the European elections", "the semiconductor industry", "renewable energy",
    "the Champions League", "the housing market", "space exploration",
    "artificial intelligence regulation", "the Olympics", "interest rates", "the climate talks",
)  # fmt: skip
_CONTACTS = (
    "Priya", "Marcus", "Elena", "Tom", "Aisha", "Diego", "Hannah", "Kenji", "Fatima", "Lukas",
    "Sofia", "Omar",
)  # fmt: skip
_WHEN = (
    "tomorrow at 3pm", "next Monday at 10am", "Friday at noon", "Thursday at 4:30pm",
    "next Tuesday morning", "the 14th at 9am", "Wednesday afternoon", "Saturday at 11am",
)  # fmt: skip
_DAYS = ("today", "tomorrow", "this Friday", "next Monday", "on Thursday", "on the 21st")
_PLACES = (
    "coffee shops", "pharmacies", "vegan restaurants", "gas stations", "bookstores", "museums",
    "gyms", "bakeries", "ATMs", "laundromats", "playgrounds", "ramen bars",
)  # fmt: skip


def _expr(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"{rng.randint(12, 999)} * {rng.randint(3, 99)}"
    if kind == 1:
        return f"{rng.choice((5, 12, 15, 17, 18, 20, 35))}% of {rng.randint(20, 900) * 10}"
    if kind == 2:
        root = rng.randint(13, 99)
        return f"the square root of {root * root}"
    return f"({rng.randint(100, 999)} + {rng.randint(100, 999)}) / {rng.randint(2, 9)}"


_FILLERS: dict[str, Callable[[random.Random], str]] = {
    "city": lambda r: r.choice(_CITIES),
    "city2": lambda r: r.choice(_CITIES),
    "product": lambda r: r.choice(_PRODUCTS),
    "person": lambda r: r.choice(_PEOPLE),
    "topic": lambda r: r.choice(_TOPICS),
    "subject": lambda r: r.choice(_SUBJECTS),
    "doc": lambda r: r.choice(_DOCS),
    "thread": lambda r: r.choice(_THREADS),
    "company": lambda r: r.choice(_COMPANIES),
    "cur": lambda r: r.choice(_CURRENCIES),
    "cur2": lambda r: r.choice(_CURRENCIES),
    "lang": lambda r: r.choice(_LANGUAGES),
    "phrase": lambda r: r.choice(_PHRASES),
    "news": lambda r: r.choice(_NEWS),
    "contact": lambda r: r.choice(_CONTACTS),
    "when": lambda r: r.choice(_WHEN),
    "day": lambda r: r.choice(_DAYS),
    "place": lambda r: r.choice(_PLACES),
    "order": lambda r: f"#{r.randint(10000, 99999)}",
    "amount": lambda r: f"{r.randint(2, 400) * 5:,}",
    "budget": lambda r: str(r.randint(3, 30) * 10),
    "expr": _expr,
    "a": lambda r: str(r.randint(12, 999)),
    "b": lambda r: str(r.randint(3, 99)),
    "nights": lambda r: str(r.randint(2, 7)),
}

_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")

# Slots that must differ from another slot in the same query.
_DISTINCT = {"city2": "city", "cur2": "cur"}


@dataclass(frozen=True)
class _Template:
    family: str
    category: str
    expected: tuple[str, ...]
    text: str
    count: int = 3


def _t(family: str, category: str, expected: str, text: str, count: int = 3) -> _Template:
    return _Template(family, category, tuple(sorted(expected.split())), text, count)


# Roughly half of the templates are phrased with the tools' cue words; the rest use synonyms
# the keyword lists lack, or decoy words that point at the wrong tool.
_TEMPLATES: tuple[_Template, ...] = (
    # ---- information -----------------------------------------------------------------------
    _t("weather", "information", "weather_forecast",
       "What's the weather forecast for {city} this weekend?"),
    _t("weather", "information", "weather_forecast", "Will it rain in {city} {day}?"),
    _t("weather", "information", "weather_forecast", "Do I need an umbrella in {city} {day}?"),
    _t("weather", "information", "weather_forecast", "Is it going to snow in {city} {day}?"),
    _t("weather", "information", "weather_forecast", "What's the temperature in {city} right now?"),
    _t("calc", "information", "calculator", "Calculate {expr}."),
    _t("calc", "information", "calculator", "What is {a} multiplied by {b}?"),
    _t("calc", "information", "calculator", "What's {expr}? Please calculate it exactly."),
    _t("currency", "information", "currency_convert", "Convert {amount} {cur} to {cur2}."),
    _t("currency", "information", "currency_convert",
       "How many {cur2} would I get for {amount} {cur}?"),
    _t("currency", "information", "currency_convert",
       "What's the exchange rate from {cur} to {cur2} today?"),
    _t("news", "information", "news_headlines", "Show me the latest news headlines about {news}."),
    _t("news", "information", "news_headlines", "Anything happening with {news} today?"),
    _t("stock", "information", "stock_quote", "What's {company}'s stock doing right now?"),
    _t("stock", "information", "stock_quote", "What is {company} trading at this morning?"),
    _t("translate", "information", "translate_text", "Translate '{phrase}' into {lang}."),
    _t("translate", "information", "translate_text", "How do you say '{phrase}' in {lang}?"),
    _t("weather", "information", "email_send weather_forecast",
       "Email {contact} the weather forecast for {city}."),
    _t("translate", "information", "email_send translate_text",
       "Translate '{phrase}' to {lang} and email it to {contact}."),
    _t("weather", "information", "email_send weather_forecast",
       "Email me the weather in {city} every morning this week."),
    _t("currency", "information", "currency_convert translate_text",
       "Convert {amount} {cur} to {cur2} and translate '{phrase}' into {lang}."),
    _t("stock", "information", "news_headlines stock_quote",
       "Give me {company}'s share price and any breaking news about the company."),
    _t("stock", "information", "news_headlines stock_quote",
       "Why is {company} moving today? Show the quote and what the press is saying."),
    _t("weather", "information", "currency_convert weather_forecast",
       "Check the forecast in {city} and convert {amount} {cur} to {cur2} for my trip."),
    _t("calc", "information", "calculator email_send",
       "Compute {expr} and email the result to {contact}."),
    _t("news", "information", "news_headlines translate_text",
       "Find today's headlines about {news} and translate them into {lang}."),
    # ---- research --------------------------------------------------------------------------
    _t("papers", "research", "paper_search", "Find recent research papers on {topic}."),
    _t("papers", "research", "paper_search",
       "What does the peer-reviewed literature say about {topic}?"),
    _t("encyclopedia", "research", "encyclopedia_lookup",
       "Who was {person}? Give me the encyclopedia summary."),
    _t("encyclopedia", "research", "encyclopedia_lookup", "Tell me about the history of {subject}."),
    _t("encyclopedia", "research", "encyclopedia_lookup",
       "Give me a quick background on {subject}."),
    _t("websearch", "research", "web_search", "Search the web for beginner guides on {topic}."),
    _t("websearch", "research", "web_search", "Google {topic} and summarise the top results."),
    _t("websearch", "research", "web_search", "Find websites that explain {topic} for beginners."),
    _t("docs", "research", "docs_search", "Where do our internal docs cover {doc}?"),
    _t("docs", "research", "docs_search", "Search the company wiki for {doc}."),
    _t("encyclopedia", "research", "encyclopedia_lookup",
       "Pull up the Wikipedia biography of {person}."),
    _t("docs", "research", "docs_search", "What's our team's official guidance on {doc}?"),
    _t("papers", "research", "email_send paper_search",
       "Find the arXiv preprint on {topic} and email it to {contact}."),
    _t("encyclopedia", "research", "encyclopedia_lookup paper_search",
       "Who was {person}, and are there academic studies about their work?"),
    _t("docs", "research", "docs_search web_search",
       "Check our documentation on {doc} and search the web for how other companies handle it."),
    _t("encyclopedia", "research", "encyclopedia_lookup translate_text",
       "Read the Wikipedia article on {subject} and translate the summary into {lang}."),
    _t("encyclopedia", "research", "encyclopedia_lookup news_headlines",
       "Compare the encyclopedia entry on {person} with recent news coverage of them."),
    _t("papers", "research", "paper_search",
       "I saw a news story about {topic}; find the original study behind it."),
    _t("docs", "research", "calendar_create_event docs_search",
       "Find our docs on {doc} and put a review meeting on my calendar {when}."),
    # ---- e-commerce ------------------------------------------------------------------------
    _t("shop", "e-commerce", "product_search", "Find the cheapest {product} I can buy."),
    _t("shop", "e-commerce", "product_search", "I'm looking for a decent {product} under ${budget}."),
    _t("cart", "e-commerce", "cart_add", "Add a {product} to my cart."),
    _t("cart", "e-commerce", "cart_add", "I'll take the {product}; hold one for checkout."),
    _t("cart", "e-commerce", "cart_add", "I want to order a {product}; add it to my cart."),
    _t("order", "e-commerce", "order_status", "Where is my order {order}?"),
    _t("order", "e-commerce", "order_status", "Has my order {order} shipped yet?"),
    _t("order", "e-commerce", "order_status", "Track package {order} for me."),
    _t("order", "e-commerce", "order_status", "When will my {product} arrive? It's {order}."),
    _t("reviews", "e-commerce", "product_reviews", "Show me reviews for the {product}."),
    _t("reviews", "e-commerce", "product_reviews", "Are people happy with the {product}?"),
    _t("reviews", "e-commerce", "cart_add product_reviews",
       "Is the {product} any good? If customers like it, put it in my basket."),
    _t("shop", "e-commerce", "cart_add product_reviews product_search",
       "Search the store for a {product} with good reviews and add the best one to my cart."),
    _t("cart", "e-commerce", "cart_add order_status",
       "Add the {product} to my basket and check the delivery status of order {order}."),
    _t("order", "e-commerce", "email_send order_status",
       "Check the status of order {order} and email {contact} the tracking details."),
    _t("shop", "e-commerce", "product_reviews product_search",
       "Compare prices for a {product} and show me its ratings."),
    _t("order", "e-commerce", "email_search",
       "Search my inbox for the receipt from my {product} order."),
    _t("shop", "e-commerce", "currency_convert product_search",
       "How much is a {product} in {cur}?"),
    # ---- productivity ----------------------------------------------------------------------
    _t("calendar", "productivity", "calendar_create_event",
       "Schedule a meeting with {contact} {when}."),
    _t("calendar", "productivity", "calendar_create_event", "Set up a call with {contact} {when}."),
    _t("calendar", "productivity", "calendar_list_events", "What's on my calendar {day}?"),
    _t("calendar", "productivity", "calendar_list_events", "Is anything booked for me {day}?"),
    _t("calendar", "productivity", "calendar_list_events", "Am I free {when}?"),
    _t("calendar", "productivity", "calendar_create_event email_send",
       "Schedule a dentist appointment {when} and email {contact} about it."),
    _t("email", "productivity", "email_send",
       "Send an email to {contact} saying I'll be late {day}."),
    _t("email", "productivity", "email_send", "Drop {contact} a note that {thread} is ready."),
    _t("email", "productivity", "email_search",
       "Search my inbox for emails from {contact} about {thread}."),
    _t("email", "productivity", "email_search", "Did {contact} ever reply about {thread}?"),
    _t("calendar", "productivity", "calendar_list_events email_send",
       "Email {contact} what is on my agenda {day}."),
    _t("email", "productivity", "calendar_create_event email_search",
       "Find {contact}'s email about {thread} and add the date it mentions to my calendar."),
    _t("email", "productivity", "email_search",
       "Search my email for the message about our weather-delayed trip to {city}."),
    # ---- travel ----------------------------------------------------------------------------
    _t("flights", "travel", "flight_search", "Find flights from {city} to {city2} next month."),
    _t("flights", "travel", "flight_search",
       "What's the cheapest way to fly from {city} to {city2}?"),
    _t("hotels", "travel", "hotel_search", "Find a hotel in {city} for {nights} nights."),
    _t("hotels", "travel", "hotel_search", "I need somewhere to sleep in {city} {day}."),
    _t("maps", "travel", "maps_directions", "Give me walking directions to {city} Old Town."),
    _t("maps", "travel", "maps_directions",
       "How long would it take me to bike to the {city} waterfront?"),
    _t("maps", "travel", "maps_places", "What {place} are near me?"),
    _t("maps", "travel", "maps_places", "Where are the closest {place} to {city} central station?"),
    _t("maps", "travel", "maps_directions", "How far is the drive from {city} airport to downtown?"),
    _t("maps", "travel", "maps_places", "Find {place} near my hotel in {city}."),
    _t("hotels", "travel", "flight_search hotel_search",
       "Book me a room in {city} and a flight there from {city2}."),
    _t("flights", "travel", "flight_search hotel_search weather_forecast",
       "Plan a trip to {city}: flights from {city2}, a hotel, and the weather forecast."),
    _t("hotels", "travel", "hotel_search maps_directions",
       "Find a hotel in {city} and directions from the airport to it."),
)  # fmt: skip

_FORMATTER = string.Formatter()


def _slots(text: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(text) if name]


def _fill(text: str, rng: random.Random) -> str:
    values: dict[str, str] = {}
    for slot in _slots(text):
        if slot in values:
            continue
        value = _FILLERS[slot](rng)
        other = _DISTINCT.get(slot)
        while other is not None and values.get(other) == value:
            value = _FILLERS[slot](rng)
        values[slot] = value
    return _A_BEFORE_VOWEL.sub(r"\1n ", text.format(**values))


def generate_scenarios(seed: int = 0) -> list[Scenario]:
    """Build the tool-selection scenarios for ``seed``.

    Deterministic: the same seed always yields the identical list (ids, queries, order).
    Each template is instantiated several times with seeded fillers (cities, products, people,
    topics, amounts, currencies, languages, ...); duplicate queries are skipped, so every
    query is unique. Ids are ``"<family>-<NNN>"``, numbered per family in generation order.
    About half the templates use synonyms or decoy words, so a naive keyword matcher is right
    only part of the time.
    """
    rng = random.Random(f"tool-selection|{seed}")
    seen: set[str] = set()
    counters: dict[str, int] = {}
    scenarios: list[Scenario] = []
    for template in _TEMPLATES:
        made = 0
        attempts = 0
        while made < template.count and attempts < template.count * 20:
            attempts += 1
            query = _fill(template.text, rng)
            if query in seen:
                continue
            seen.add(query)
            made += 1
            counters[template.family] = counters.get(template.family, 0) + 1
            scenarios.append(
                Scenario(
                    id=f"{template.family}-{counters[template.family]:03d}",
                    query=query,
                    expected=template.expected,
                    category=template.category,
                    difficulty="single" if len(template.expected) == 1 else "multi",
                )
            )
    return scenarios


SCENARIOS: list[Scenario] = generate_scenarios(0)


def _unit_hash(scenario_id: str, seed: int) -> float:
    """A stable number in [0, 1) for ``scenario_id`` (sha256, the same on every machine)."""
    digest = hashlib.sha256(f"tool-selection-split|{seed}|{scenario_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_scenarios(
    scenarios: Sequence[Scenario] | None = None, *, held_out: float = 0.25, seed: int = 0
) -> tuple[list[Scenario], list[Scenario]]:
    """Split scenarios into ``(train, held_out)`` deterministically, by scenario id.

    A scenario is held out when a stable hash of its id (and ``seed``) falls below
    ``held_out``, so the split never depends on order or on which other scenarios exist. A
    held-out scenario whose exact tool set no training scenario needs goes back to training:
    every held-out plan is one the training data teaches, though never for that query. Both
    lists keep the input order (:data:`SCENARIOS` when ``scenarios`` is None).

    Raises:
        ValueError: ``held_out`` is not in [0, 1) or two scenarios share an id.
    """
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)):
        raise ValueError(f"held_out must be a number in [0, 1), got {held_out!r}")
    if not 0.0 <= held_out < 1.0:
        raise ValueError(f"held_out must be in [0, 1), got {held_out!r}")
    pool = list(SCENARIOS if scenarios is None else scenarios)
    ids = [s.id for s in pool]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"scenario ids must be unique; repeated: {dupes}")
    out = {s.id for s in pool if _unit_hash(s.id, seed) < held_out}
    taught = {s.expected for s in pool if s.id not in out}
    out = {s.id for s in pool if s.id in out and s.expected in taught}
    return [s for s in pool if s.id not in out], [s for s in pool if s.id in out]


# --------------------------------------------------------------------------------------------
# Prompt, reply format and parsing
# --------------------------------------------------------------------------------------------


def planner_messages(query: str, tools: Sequence[Tool] = TOOLS) -> list[dict[str, str]]:
    """Return the chat prompt an LLM planner sees for ``query``.

    A system message lists every tool as ``- name: description`` and asks for a JSON object
    ``{"tools": [...]}`` and nothing else; the user message is the query itself.
    """
    listing = "\n".join(f"- {tool.name}: {tool.description}" for tool in tools)
    system = (
        "You are a tool-selection planner. Given the user's request, choose exactly the set "
        "of tools needed to fulfil it: every tool that is required and no others.\n\n"
        f"Available tools:\n{listing}\n\n"
        'Answer with JSON only, in the form {"tools": ["tool_name", ...]}, using the tool '
        "names exactly as listed. No explanation, no markdown."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": query}]


def format_plan(tools: Iterable[str]) -> str:
    """Return the canonical assistant reply: ``json.dumps({"tools": sorted(set(tools))})``."""
    return json.dumps({"tools": sorted(set(tools))})


class PlanParseError(ValueError):
    """A model reply that is not a valid ``{"tools": [...]}`` plan."""


def parse_plan(text: str) -> list[str]:
    """Strictly parse a model reply into a sorted list of unique tool names.

    The reply (surrounding whitespace aside) must be a JSON object whose only key is
    ``"tools"`` and whose value is a list of strings, each a known tool name. Duplicates are
    allowed and collapsed. Anything else raises :class:`PlanParseError`.
    """
    if not isinstance(text, str):
        raise PlanParseError(f"plan must be a string, got {type(text).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanParseError(f"plan is not valid JSON ({exc.msg}): {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise PlanParseError(f'plan must be a JSON object {{"tools": [...]}}, got {text[:80]!r}')
    if "tools" not in data:
        raise PlanParseError(f'plan object has no "tools" key; keys: {sorted(data)}')
    extra = sorted(key for key in data if key != "tools")
    if extra:
        raise PlanParseError(f'plan object must only have the "tools" key; unexpected: {extra}')
    names = data["tools"]
    if not isinstance(names, list):
        raise PlanParseError(f'"tools" must be a list, got {type(names).__name__}')
    bad_types = [name for name in names if not isinstance(name, str)]
    if bad_types:
        raise PlanParseError(f'"tools" must contain only strings; got {bad_types!r}')
    unknown = sorted({name for name in names if name not in TOOLS_BY_NAME})
    if unknown:
        raise PlanParseError(f"unknown tool names {unknown}; known tools: {sorted(TOOLS_BY_NAME)}")
    return sorted(set(names))


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """Grade of one plan against a scenario."""

    reward: float
    components: dict[str, float]
    passed: bool
    message: str

    def to_reward(self) -> Reward:
        """The grade as a :class:`~pytest_teach.Reward`: ``exact`` 0.6, ``precision`` 0.2,
        ``recall`` 0.2, and ``valid`` logged with weight 0 (its value equals :attr:`reward`)."""
        return Reward.of(self.components, weights=REWARD_WEIGHTS)


_W_EXACT, _W_PRECISION, _W_RECALL = 0.6, 0.2, 0.2
#: The weights of :func:`check`'s components; ``valid`` is logged, not scored.
REWARD_WEIGHTS = {"exact": _W_EXACT, "precision": _W_PRECISION, "recall": _W_RECALL, "valid": 0.0}


def check(scenario: Scenario, chosen: Iterable[str]) -> Check:
    """Grade the tool set ``chosen`` against ``scenario.expected``.

    Components: ``exact`` (1.0 if the sets are equal, else 0.0), ``precision`` (share of
    chosen tools that are expected; 0.0 for an empty choice), ``recall`` (share of expected
    tools that were chosen) and ``valid`` (1.0 if every chosen name is a known tool).

    ``reward = 0.6 * exact + 0.2 * precision + 0.2 * recall``, so an exact plan scores 1.0 and
    partial plans earn partial credit below 0.4. ``valid`` is reported but not weighted
    (unknown names already lower precision). ``passed`` is the exact set match.
    """
    if isinstance(chosen, str):
        raise TypeError("chosen must be an iterable of tool names, not a single string")
    got = sorted(set(chosen))
    expected = sorted(set(scenario.expected))
    hit = set(got) & set(expected)
    exact = 1.0 if got == expected else 0.0
    precision = len(hit) / len(got) if got else 0.0
    recall = len(hit) / len(expected) if expected else 1.0
    unknown = [name for name in got if name not in TOOLS_BY_NAME]
    valid = 0.0 if unknown else 1.0
    reward = _W_EXACT * exact + _W_PRECISION * precision + _W_RECALL * recall
    head = f"expected {expected}, got {got}"
    if exact:
        message = f"{head}: exact match"
    else:
        missing = [name for name in expected if name not in hit]
        unexpected = [name for name in got if name not in hit]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if unknown:
            parts.append(f"unknown {unknown}")
        message = f"{head}: {', '.join(parts)}"
    return Check(
        reward=round(reward, 6),
        components={"exact": exact, "precision": precision, "recall": recall, "valid": valid},
        passed=bool(exact),
        message=message,
    )


# --------------------------------------------------------------------------------------------
# Scripted planners
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Cheap deterministic token estimate: the number of ``\\w+|[^\\w\\s]`` pieces in ``text``."""
    return len(_TOKEN_RE.findall(text))


@dataclass
class Plan:
    """One planner reply with its transcript and accounting."""

    tools: list[str]
    text: str
    messages: list[dict[str, str]]
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: float
    #: A structured step error when the reply was unusable, e.g.
    #: ``{"type": "unparseable_output", "message": ..., "output": text[:500]}``.
    error: dict[str, Any] | None = None
    #: The model's distribution over the single-tool plans (``{tool: p}``), when the provider
    #: can score them (``hf:``); its entropy is the planner's uncertainty.
    probs: dict[str, float] | None = None


class ScriptedPlanner(ABC):
    """A deterministic stand-in for an LLM planner (free, instant, reproducible)."""

    name: str = "scripted"

    @abstractmethod
    def choose(self, scenario: Scenario) -> list[str]:
        """Return the tool names this planner picks for ``scenario``."""

    def plan(self, scenario: Scenario) -> Plan:
        """Run :meth:`choose` and wrap it as a :class:`Plan` (prompt, reply, tokens, latency).

        Scripted planners cost nothing, so ``cost_usd`` is 0.0; ``latency_ms`` is the measured
        wall time of this call.
        """
        start = time.perf_counter()
        prompt = planner_messages(scenario.query)
        tools = sorted(set(self.choose(scenario)))
        text = format_plan(tools)
        messages = [*prompt, {"role": "assistant", "content": text}]
        prompt_tokens = sum(count_tokens(message["content"]) for message in prompt)
        completion_tokens = count_tokens(text)
        latency_ms = (time.perf_counter() - start) * 1000.0
        return Plan(
            tools=tools,
            text=text,
            messages=messages,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_ms=latency_ms,
            cost_usd=0.0,
        )


class OraclePlanner(ScriptedPlanner):
    """Always answers with the scenario's expected tool set."""

    name = "oracle"

    def choose(self, scenario: Scenario) -> list[str]:
        """Return the expected tools."""
        return list(scenario.expected)


class KeywordPlanner(ScriptedPlanner):
    """Picks every tool one of whose keywords occurs (word-boundary match) in the query."""

    name = "keyword"

    def __init__(self, tools: Sequence[Tool] = TOOLS) -> None:
        self._patterns = [
            (
                tool.name,
                re.compile(r"\b(?:" + "|".join(re.escape(k) for k in tool.keywords) + r")\b"),
            )
            for tool in tools
        ]

    def choose(self, scenario: Scenario) -> list[str]:
        """Return the tools whose keywords appear in the lowercased query."""
        query = scenario.query.lower()
        return sorted(name for name, pattern in self._patterns if pattern.search(query))


class NoisyPlanner(ScriptedPlanner):
    """The oracle, corrupted with probability ``p`` in a realistic way.

    A corruption drops a needed tool (only for multi-tool plans), adds a wrong tool from the
    same category as a needed one, or swaps a needed tool for a near neighbour. It always
    makes the plan wrong. The draw is a pure function of ``(scenario.id, p, seed)``.
    """

    def __init__(self, p: float, seed: int = 0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"noise probability must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.seed = seed
        self.name = f"noisy-{self.p}"

    def choose(self, scenario: Scenario) -> list[str]:
        """Return the expected tools, or a corrupted (always wrong) variant."""
        expected = sorted(set(scenario.expected))
        rng = random.Random(f"{scenario.id}|{self.p}|{self.seed}")
        if rng.random() >= self.p:
            return expected
        wanted = set(expected)
        categories = {TOOLS_BY_NAME[name].category for name in expected}
        additions = [t.name for t in TOOLS if t.category in categories and t.name not in wanted]
        swaps = [
            (name, other)
            for name in expected
            for other in _NEIGHBOURS.get(name, ())
            if other not in wanted
        ]
        kinds = [k for k, ok in (("drop", len(expected) > 1), ("add", additions), ("swap", swaps))
                 if ok]  # fmt: skip
        kind = rng.choice(kinds) if kinds else "drop"
        if kind == "drop":
            dropped = rng.choice(expected)
            return [name for name in expected if name != dropped]
        if kind == "add":
            return sorted([*expected, rng.choice(additions)])
        old, new = rng.choice(swaps)
        return sorted([new if name == old else name for name in expected])


SCRIPTED_NAMES: tuple[str, ...] = ("oracle", "keyword", "noisy-P")


def scripted_planner(name: str, seed: int = 0) -> ScriptedPlanner:
    """Build a scripted planner by name: ``"oracle"``, ``"keyword"`` or ``"noisy-P"``.

    ``P`` is the corruption probability, a number in [0, 1] (e.g. ``"noisy-0.3"``); ``seed``
    only affects the noisy planner. Raises :class:`ValueError` naming the bad value and
    listing the valid names otherwise.
    """
    valid = ", ".join(repr(n) for n in SCRIPTED_NAMES)
    if name == "oracle":
        return OraclePlanner()
    if name == "keyword":
        return KeywordPlanner()
    p = noise_level(name)
    if p is not None:
        return NoisyPlanner(p, seed=seed)
    raise ValueError(f"unknown scripted planner {name!r}; valid names: {valid}")


# --------------------------------------------------------------------------------------------
# Model-backed planner
# --------------------------------------------------------------------------------------------


class LLMPlanner:
    """A planner backed by a chat model (``openai:`` or ``hf:`` spec).

    It sends :func:`planner_messages`, parses the reply strictly with :func:`parse_plan`, and
    returns a :class:`Plan`. A reply that doesn't parse gives ``tools == []`` and a
    ``Plan.error`` of type ``unparseable_output`` (the agent's fault: it fails the scenario).
    A failed call raises :class:`~pytest_teach.agents.ModelCallError` (infrastructure's fault).
    """

    def __init__(self, chat: ChatModel, *, max_tokens: int = 128, temperature: float = 0.0):
        self.chat = chat
        self.name = chat.spec
        self.max_tokens = max_tokens
        self.temperature = temperature

    def __repr__(self) -> str:
        return f"LLMPlanner({self.chat!r})"

    def plan(self, scenario: Scenario) -> Plan:
        """Ask the model for a plan for ``scenario``.

        Raises:
            ModelCallError: the model call failed (timeout, server error, cache miss, ...).
        """
        prompt = planner_messages(scenario.query)
        candidates = {format_plan([tool.name]): tool.name for tool in TOOLS}
        completion = self.chat.complete(
            prompt,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            valid_actions=list(candidates),
        )
        text = completion.text
        error: dict[str, Any] | None = None
        try:
            tools = parse_plan(text.strip())
        except PlanParseError as exc:
            tools = []
            error = {"type": "unparseable_output", "message": str(exc), "output": text[:500]}
        return Plan(
            tools=tools,
            text=text,
            messages=[*prompt, {"role": "assistant", "content": text}],
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_ms=completion.latency_ms,
            cost_usd=completion.cost_usd,
            error=error,
            probs=None
            if completion.action_probs is None
            else {candidates[k]: p for k, p in completion.action_probs.items() if k in candidates},
        )


def planner_for(
    agent: Agent, *, cache: str = "off", cache_dir: str | Path | None = None
) -> ScriptedPlanner | LLMPlanner:
    """The planner behind an ``agent`` fixture.

    ``scripted:NAME`` maps to the scripted planners (:func:`scripted_planner`); ``openai:`` and
    ``hf:`` specs give an :class:`LLMPlanner` over :func:`~pytest_teach.agents.chat_model`,
    with replies recorded to or replayed from ``cache_dir`` when ``cache`` is ``record`` or
    ``replay``.

    Raises:
        ValueError: an unknown scripted name, a bad spec or cache mode, or a missing model dir.
    """
    if agent.provider == "scripted":
        return scripted_planner(agent.name, seed=agent.seed)
    from ..agents import chat_model

    return LLMPlanner(chat_model(agent.spec, cache=cache, cache_dir=cache_dir))


def _teacher_oracle(
    scenario: Scenario, observation: object, valid_actions: Sequence[object]
) -> tuple[list[str], str]:
    """The offline teacher for this family: the expected tools, and what the student missed."""
    return list(scenario.expected), f"The query needs {', '.join(scenario.expected)}."


def _register_teacher() -> None:
    from ..teacher import register_oracle

    register_oracle("tool_selection", _teacher_oracle)


_register_teacher()
