"""Refining a job: its conversation read back from the ledger and the image files, and
checked before anything is sent (docs/facts.md "Conversations").

Runs on the caller's thread (the kernel's main thread for magics and the API), like the
reading of reference images: files and SQLite, never the engine's loop.

    api.conversation_of(job)  the conversation that ends with a job, first turn first (for
                              displays: job id, turn number, prompt, image path, the text)
    load(store, id)           the same, with every image read, ready to be sent again
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import config, references
from .errors import ConfigError
from .facts import MAX_INLINE_REQUEST_BYTES
from .store import Store
from .turns import Exchange, Part, Turn
from .types import ReferenceImage, Request

# What a turn costs on the wire besides its images: the JSON around each part. Small next
# to the images; counted so that the check errs on the side of the service's limit.
PART_OVERHEAD = 64


@dataclass(frozen=True)
class Conversation:
    """What a refine adds to its request: the turns so far, read and checked."""

    parent: str  # the job refined
    turn: int  # the refine's own turn number
    history: tuple[Turn, ...]
    size: str  # the refined job's size and aspect: the refine's defaults
    aspect: str
    simulated: bool = False  # its turns were answered by the simulator (its signatures)
    # The image of a turn made on a wire without signatures (an OpenAI-style gateway): the
    # turns before it cannot be sent on, so the conversation starts again from this image,
    # sent as a reference with the new prompt.
    restart: ReferenceImage | None = None


def load(store: Store, job_id: str, *, still_running: bool = False) -> Conversation:
    """The conversation that ends with `job_id`, every image read from its file; raises a
    one-line ConfigError for a job that cannot be refined or a damaged turn."""
    row = store.job(job_id)
    if row is None and not still_running:
        raise ConfigError(f"no job {job_id!r} in the ledger at {store.home}",
                          hint="%nbp_history lists the jobs; refine takes one of their ids")
    if still_running or row is None or row["status"] == "running":
        raise ConfigError(f"job {job_id} is still running: there is no image to refine yet",
                          hint="wait for it (job.result() or %nbp_wait), then refine it")
    if row["status"] != "done":
        raise ConfigError(f"job {job_id} is {row['status']} without an image: nothing to refine",
                          hint="refine a job that made an image, or submit the prompt again")
    chain = store.conversation(job_id)
    if not chain or chain[-1].job_id != job_id:
        raise ConfigError(f"job {job_id} has no recorded conversation turn (a batch job, an "
                          "image recovered after a crash, or one made by an older nbp_jupyter)",
                          hint="give its image as a reference instead: images=[its path]")
    first = chain[0]
    if first.parent is not None:
        raise ConfigError(f"the conversation of job {job_id} is cut: its turn {first.number} "
                          f"refines job {first.parent}, which has no turn in this ledger",
                          hint="refine a job of an unbroken conversation, or start again")
    history: list[Turn] = []
    kept: list[Exchange] = []
    restart: Part | None = None  # the image the next turn starts again from
    for exchange in chain:
        user, model = exchange.turns()
        if not _signs(exchange):  # an edit through a gateway: what came before stays behind
            history, kept = [], []
            restart = _read(next(p for p in model.parts if p.is_image), exchange, "image",
                            store.images)
            continue
        prompt, *refs = user.parts
        refs = [_reference(p, exchange) for p in refs]
        restart = None  # the turn after it sent that image as its first reference (kept)
        history.append(Turn("user", (prompt, *refs)))
        history.append(Turn("model", tuple(_model_part(p, exchange, store.images)
                                            for p in model.parts)))
        kept.append(exchange)
    return Conversation(parent=job_id, turn=chain[-1].number + 1, history=tuple(history),
                        size=row["requested"], aspect=row["aspect"],
                        simulated=any(e.provider == "sim" for e in kept),
                        restart=None if restart is None else ReferenceImage(
                            data=restart.data, mime=restart.mime,
                            name=Path(restart.path or "").name, path=restart.path or ""))


def _signs(exchange: Exchange) -> bool:
    """Whether the turn was answered on the Gemini wire, which signs its answers."""
    return config.WIRES.get(exchange.provider, exchange.provider) == "gemini"


def check_service(conversation: Conversation, provider: str) -> None:
    """Signatures are the issuer's own: the simulator's mean nothing to Gemini and Gemini's
    nothing to the simulator, which would each answer "Corrupted thought signature"."""
    if conversation.history and conversation.simulated != (provider == "sim"):
        made, now = ("the simulator", provider) if conversation.simulated else ("Gemini", "sim")
        raise ConfigError(f"job {conversation.parent}'s conversation was made by {made}; its "
                          f"thought signatures are not valid for provider {now!r}",
                          hint=f"refine it with the provider that made it, or start a new "
                               f"conversation with its image as a reference")


def _model_part(part: Part, exchange: Exchange, images: Path) -> Part:
    if not part.is_image:
        return part
    if not part.signature:
        raise ConfigError(
            f"turn {exchange.number} (job {exchange.job_id}) has an image without its thought "
            f"signature, which provider {exchange.provider or 'unknown'} gave with it",
            hint="its turn in the ledger is damaged; refine another turn, or give the image "
                 "as a reference instead")
    return _read(part, exchange, "image", images)


def _reference(part: Part, exchange: Exchange) -> Part:
    """A turn's reference read again as references.py reads a new one (type from the bytes,
    downscaled when the service would refuse it), so a turn is sent as it was then."""
    try:
        found = references.read(part.path or "")
    except ConfigError:
        raise _damaged(part, exchange, "reference image") from None
    return Part(path=part.path, mime=found.mime, data=found.data)


def _read(part: Part, exchange: Exchange, what: str, images: Path) -> Part:
    """A model turn's image, read only from the ledger's own images folder: a shared or
    tampered ledger must not make a refine send some other local file to the service."""
    path = Path(part.path or "")
    try:
        if not path.resolve().is_relative_to(images.resolve()):
            raise ConfigError(f"turn {exchange.number} (job {exchange.job_id}): its {what} "
                              f"{part.path} is not in this ledger's images folder {images}",
                              hint="refine a turn made here, or give the file as a reference")
        data = path.read_bytes()
    except (OSError, ValueError):
        raise _damaged(part, exchange, what) from None
    return Part(path=part.path, mime=part.mime, signature=part.signature, data=data)


def _damaged(part: Part, exchange: Exchange, what: str) -> ConfigError:
    return ConfigError(f"turn {exchange.number} (job {exchange.job_id}): its {what} "
                       f"{part.path} is missing or unreadable",
                       hint="put the file back, or refine an earlier turn")


def request_bytes(request: Request) -> int:
    """About what the request weighs on the wire: base64 makes each image a third larger."""
    images = [p.data for turn in request.history for p in turn.parts if p.is_image]
    images += [r.data for r in request.images]
    texts = [p.text or "" for turn in request.history for p in turn.parts if not p.is_image]
    texts.append(request.prompt)
    parts = len(images) + len(texts)
    return (sum((len(d) + 2) // 3 * 4 for d in images)
            + sum(len(t.encode()) for t in texts) + parts * PART_OVERHEAD)


def check_size(request: Request) -> None:
    """Refuse a request over the service's inline limit before it is sent (docs/facts.md
    "Request limits"), saying how to get under it."""
    size = request_bytes(request)
    if size > MAX_INLINE_REQUEST_BYTES:
        turns = len(request.history) // 2
        raise ConfigError(
            f"this request would be {size / 2**20:.1f} MB with its {turns} earlier turn"
            f"{'s' if turns != 1 else ''} and their images, over the service's "
            f"{MAX_INLINE_REQUEST_BYTES // 2**20} MB limit",
            hint="refine an earlier turn (fewer turns), or use fewer or smaller references")
