"""What an image costs, per model and resolution, and how to price one answer.

Gemini bills by token and by modality (docs/facts.md "Per-modality cost"): image output at
the image rate, text output and thinking at the text-output rate, prompt text and input
images at the input rate. A gateway that states its own charge for the call (LiteLLM's
`x-litellm-response-cost`, OpenRouter's `usage.cost`) is believed over the table. Reseller
prices for OpenAI-compatible gateways are per image. Override with `set_price`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import sizes


@dataclass(frozen=True)
class ModelPrice:
    per_image: dict[str, float]  # resolution -> USD, used when the answer has no token count
    output_per_mtok: float | None = None  # USD per 1M image-output tokens, when billed by token
    input_per_mtok: float = 0.0  # prompt text and input images
    text_output_per_mtok: float | None = None  # text output and thinking; None: image rate
    source: str = ""


@dataclass(frozen=True)
class Tokens:
    """Token counts an answer reports, split the way they are billed; None: not reported."""

    input_text: int | None = None
    input_image: int | None = None
    output_image: int | None = None
    output_text: int | None = None
    thoughts: int | None = None

    def as_row(self) -> dict[str, int | None]:
        """The ledger's token columns."""
        return {"input_text_tokens": self.input_text, "input_image_tokens": self.input_image,
                "output_image_tokens": self.output_image, "output_text_tokens": self.output_text,
                "thought_tokens": self.thoughts}


def as_tokens(tokens: Tokens | int | None) -> Tokens | None:
    """Tokens from a breakdown, or from a bare image-output count (checks' size refusals)."""
    if isinstance(tokens, int) and not isinstance(tokens, bool):
        return Tokens(output_image=tokens)
    return tokens if isinstance(tokens, Tokens) else None


_GEMINI_3_PRO = ModelPrice(
    per_image={"1K": 0.134, "2K": 0.134, "4K": 0.24}, output_per_mtok=120.0, input_per_mtok=2.0,
    text_output_per_mtok=12.0, source="Google AI pricing, docs/facts.md")
_FLASH = ModelPrice(
    per_image={"1K": 0.039, "2K": 0.039, "4K": 0.039}, output_per_mtok=30.0, input_per_mtok=0.3,
    text_output_per_mtok=2.5, source="Google AI pricing, docs/facts.md: 1290 tokens = $0.039")
_RESELLER = ModelPrice(
    per_image={"1K": 0.04, "2K": 0.14, "4K": 0.24},
    source="resellers' per-image prices, docs/facts.md")

PRICES: dict[str, ModelPrice] = {
    "gemini-3-pro-image-preview": _GEMINI_3_PRO,
    "gemini-3-pro-image": _GEMINI_3_PRO,
    "gemini-2.5-flash-image": _FLASH,
    "nano-banana-pro": _RESELLER,
}
DEFAULT_PRICE = _GEMINI_3_PRO  # an unknown model is priced like Nano Banana Pro


def price_for(model: str) -> ModelPrice:
    base = model.rsplit("/", 1)[-1]
    if base in PRICES:
        return PRICES[base]
    for name, price in PRICES.items():  # e.g. nano-banana-pro-4k
        if base.startswith(name):
            return price
    return DEFAULT_PRICE


def set_price(model: str, per_image: dict[str, float], *, output_per_mtok: float | None = None,
              input_per_mtok: float = 0.0, text_output_per_mtok: float | None = None,
              source: str = "set by user") -> None:
    """Override a model's prices (e.g. your gateway's contract) for this process."""
    for resolution in per_image:
        sizes.normalize_resolution(resolution)
    PRICES[model] = ModelPrice(dict(per_image), output_per_mtok, input_per_mtok,
                               text_output_per_mtok, source)


def image_price(model: str, resolution: str) -> float:
    """The list price of one delivered image; also what an abandoned attempt may cost."""
    return price_for(model).per_image[resolution]


def token_cost(model: str, tokens: Tokens) -> float | None:
    """USD for a token breakdown at the model's per-token rates; None when it has none."""
    price = price_for(model)
    if price.output_per_mtok is None:
        return None
    text_rate = price.text_output_per_mtok if price.text_output_per_mtok is not None \
        else price.output_per_mtok
    total = ((tokens.output_image or 0) * price.output_per_mtok
             + ((tokens.output_text or 0) + (tokens.thoughts or 0)) * text_rate
             + ((tokens.input_text or 0) + (tokens.input_image or 0)) * price.input_per_mtok)
    return round(total / 1e6, 6)


def cost(model: str, resolution: str, tokens: Tokens | int | None = None,
         gateway_usd: float | None = None, *, image: bool = True) -> float:
    """USD billed for one answer: the gateway's own figure, else by tokens, else the table.

    `image=False` prices a billed answer without an image (thinking and text only)."""
    tokens = as_tokens(tokens)
    if gateway_usd is not None:
        return round(gateway_usd, 6)
    if tokens is not None and (tokens.output_image or not image):
        by_tokens = token_cost(model, tokens)
        if by_tokens is not None:
            return by_tokens
    return price_for(model).per_image[resolution]
