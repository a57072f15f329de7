"""What an image costs, per model and resolution, and how to price a response.

Gemini prices are per token [docs, Google AI pricing page, as quoted in FACTS.md]:
image output $120 per 1M tokens, 1K/2K = 1120 tokens ($0.134), 4K = 2000 tokens ($0.24);
gemini-2.5-flash-image 1290 tokens = $0.039. Text input $2 per 1M tokens, an input image
560 tokens. Reseller prices for OpenAI-compatible gateways are the seed articles' figures
(1K ~$0.04, 2K ~$0.14, 4K ~$0.24). Override with `set_price` when your contract differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import sizes


@dataclass(frozen=True)
class ModelPrice:
    per_image: dict[str, float]  # resolution -> USD, used when the answer has no token count
    output_per_mtok: float | None = None  # USD per 1M output tokens, when billed by token
    input_per_mtok: float = 0.0
    source: str = ""


_GEMINI_3_PRO = ModelPrice(
    per_image={"1K": 0.134, "2K": 0.134, "4K": 0.24}, output_per_mtok=120.0, input_per_mtok=2.0,
    source="Google AI pricing [docs], quoted in FACTS.md 2026-11")
_FLASH = ModelPrice(
    per_image={"1K": 0.039, "2K": 0.039, "4K": 0.039}, output_per_mtok=30.0, input_per_mtok=0.3,
    source="Google AI pricing [docs]: 1290 tokens = $0.039")
_RESELLER = ModelPrice(
    per_image={"1K": 0.04, "2K": 0.14, "4K": 0.24},
    source="seed articles' reseller prices, 2026")

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
              input_per_mtok: float = 0.0, source: str = "set by user") -> None:
    """Override a model's prices (e.g. your gateway's contract) for this process."""
    for resolution in per_image:
        sizes.normalize_resolution(resolution)
    PRICES[model] = ModelPrice(dict(per_image), output_per_mtok, input_per_mtok, source)


def image_price(model: str, resolution: str) -> float:
    """The list price of one delivered image; also what an abandoned attempt may cost."""
    return price_for(model).per_image[resolution]


def cost(model: str, resolution: str, output_tokens: int | None = None,
         input_tokens: int | None = None) -> float:
    """USD billed for one delivered image: by tokens when the answer says, else by table."""
    price = price_for(model)
    if output_tokens and price.output_per_mtok is not None:
        total = output_tokens * price.output_per_mtok / 1e6
        total += (input_tokens or 0) * price.input_per_mtok / 1e6
        return round(total, 6)
    return price.per_image[resolution]
