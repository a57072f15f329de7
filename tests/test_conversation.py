"""Refine by conversation on the Gemini wire, against the simulator: turns kept in the
ledger with their thought signatures, sent back as received, checked before sending."""

from __future__ import annotations

from contextlib import closing
import base64
import json
import sqlite3

import httpx
import pytest

import nbp_jupyter as nbp
from nbp_jupyter import conversation
from nbp_jupyter.errors import ConfigError
from nbp_jupyter.facts import MAX_INLINE_REQUEST_BYTES
from nbp_jupyter.turns import Part, Turn
from nbp_jupyter.types import Request


# The client's clock runs slower than the simulators' (0.001): its connect and attempt
# timeouts (10 s and 150 s at 1K, scaled) must hold on a loaded machine, as retries=0
# leaves no second chance and the tests read the simulator's log call by call.
SCALE = 0.02


def _opts(server, **extra):
    return dict(provider="gemini", base_url=server.url, api_key="k", time_scale=SCALE,
                retries=0, **extra)


def _three_turns(server):
    first = nbp.submit("a red fox in snow", size="2K", aspect="16:9", **_opts(server))
    assert first.result().success
    second = first.refine("make the sky darker", **_opts(server))
    assert second.result().success
    third = nbp.refine(second.id, "now seen from above", **_opts(server))
    assert third.result().success, third.result().error
    return first, second, third


def test_a_three_turn_conversation_sends_every_turn_back(home, simulator):
    """A refine would start from nothing (or be refused) instead of editing the last image."""
    first, second, third = _three_turns(simulator)
    turns = nbp.conversation_of(third)
    assert [(t.job_id, t.number, t.parent) for t in turns] == [
        (first.id, 1, None), (second.id, 2, first.id), (third.id, 3, second.id)]
    assert [t.prompt for t in turns] == ["a red fox in snow", "make the sky darker",
                                         "now seen from above"]
    assert [t.image_path for t in turns] == [str(j.result().image_path)
                                             for j in (first, second, third)]
    assert all(p.signature for t in turns for p in t.model_parts)  # kept as received
    # the simulator saw each turn, checked its signatures (a 200), and kept size and aspect
    assert [(e["turn"], e["status"], e["size"], e["aspect"]) for e in simulator.log] == [
        (1, 200, "2K", "16:9"), (2, 200, "2K", "16:9"), (3, 200, "2K", "16:9")]
    assert third.result().resolution == "2K"


def test_a_refine_takes_the_options_of_submit(home, simulator):
    """A refine that ignored size or aspect would silently make the wrong picture."""
    first = nbp.submit("a lighthouse", **_opts(simulator))
    first.result()
    second = first.refine("at night", size="1K", aspect="9:16", **_opts(simulator))
    got = second.result()
    assert got.success and (got.width, got.height) == (768, 1376)
    assert simulator.log[-1]["aspect"] == "9:16" and simulator.log[-1]["turn"] == 2


def test_a_result_can_be_refined_and_a_wrong_handle_is_one_short_line(home, simulator):
    """`nbp.generate(...)` gives a result, not a Job: refining it would dump its whole repr."""
    result = nbp.generate("a lighthouse", **_opts(simulator))
    second = nbp.refine(result, "at night", **_opts(simulator))
    assert second.result().success and second.result().refines == result.job_id
    assert [t.job_id for t in nbp.conversation_of(second.result())] == [result.job_id,
                                                                        second.id]
    with pytest.raises(ConfigError) as caught:
        nbp.refine(3.5, "at night", **_opts(simulator))
    assert str(caught.value).splitlines()[0].endswith("got a float")


def test_a_new_simulator_accepts_the_turns_an_earlier_one_signed(home, make_sim):
    """After a restart the keyless simulator is a new one: every refine would get a 400."""
    before = make_sim(profile="ideal", seed=1)
    first = nbp.submit("a red fox", **_opts(before))
    first.result()
    before.stop()
    after = make_sim(profile="ideal", seed=2)
    assert nbp.refine(first.id, "darker", **_opts(after)).result().success
    assert after.log[-1]["turn"] == 2 and after.log[-1]["status"] == 200


def test_a_missing_image_is_a_one_line_error_and_nothing_is_sent(home, simulator):
    """A refine would send a broken conversation (and be billed) or lose the ledger's turns."""
    first = nbp.submit("a red fox", **_opts(simulator))
    first.result()
    second = first.refine("darker", **_opts(simulator))
    kept = second.result().image_path
    first.result().image_path.unlink()
    sent = len(simulator.log)
    with pytest.raises(ConfigError) as info:
        second.refine("from above", **_opts(simulator))
    message = info.value.one_line()
    assert "\n" not in message and "turn 1" in message and "missing" in message
    assert first.id in message and "earlier turn" in message
    assert len(simulator.log) == sent  # nothing went out
    assert kept.is_file() and len(nbp.conversation_of(second)) == 2  # nothing lost


def _drop_signature(home, job_id: str, replacement: str | None = None) -> None:
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        parts = json.loads(db.execute("SELECT parts FROM turns WHERE job_id=?",
                                      (job_id,)).fetchone()[0])
        for part in parts:
            if "path" in part:
                if replacement is None:
                    part.pop("signature")
                else:
                    part["signature"] = replacement
        db.execute("UPDATE turns SET parts=? WHERE job_id=?", (json.dumps(parts), job_id))


def test_a_missing_signature_is_a_one_line_error_before_sending(home, simulator):
    """The service would answer 400 on the second turn, as it does to LangChain's users."""
    first = nbp.submit("a red fox", **_opts(simulator))
    first.result()
    _drop_signature(home, first.id)
    sent = len(simulator.log)
    with pytest.raises(ConfigError) as info:
        nbp.refine(first.id, "darker", **_opts(simulator))
    assert "without its thought signature" in info.value.one_line()
    assert len(simulator.log) == sent
    assert first.result().image_path.is_file()


def test_a_tampered_turn_cannot_send_a_file_from_outside_the_ledger(home, simulator,
                                                                   tmp_path):
    """A shared or edited ledger could make a refine upload any local file to the service."""
    first = nbp.submit("a red fox", **_opts(simulator))
    first.result()
    secret = tmp_path / "not-an-output.png"
    secret.write_bytes(first.result().image_path.read_bytes())  # a valid image, elsewhere
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        parts = json.loads(db.execute("SELECT parts FROM turns WHERE job_id=?",
                                      (first.id,)).fetchone()[0])
        for part in parts:
            if "path" in part:
                part["path"] = str(secret)
        db.execute("UPDATE turns SET parts=? WHERE job_id=?", (json.dumps(parts), first.id))
    sent = len(simulator.log)
    with pytest.raises(ConfigError) as info:
        nbp.refine(first.id, "darker", **_opts(simulator))
    assert "not in this ledger's images folder" in info.value.one_line()
    assert len(simulator.log) == sent


def test_a_signature_the_service_never_issued_is_refused_by_it(home, simulator):
    """A simulator that took any signature would pass clients the real service refuses."""
    first = nbp.submit("a red fox", **_opts(simulator))
    first.result()
    _drop_signature(home, first.id, base64.b64encode(b"made up").decode())
    got = nbp.refine(first.id, "darker", **_opts(simulator)).result()
    assert not got.success and "Corrupted thought signature" in got.error
    assert simulator.log[-1]["status"] == 400


def test_refining_a_failed_or_running_job_is_a_clear_error(home, make_sim):
    """A refine of nothing would be sent as a fresh image, or crash deep in the engine."""
    server = make_sim(profile="ideal", script="safety")
    failed = nbp.submit("a red fox", **_opts(server, fallback=False))
    assert not failed.result().success
    with pytest.raises(ConfigError, match="failed without an image"):
        failed.refine("darker", **_opts(server))
    slow = make_sim(profile="ideal", script="hang", time_scale=1.0)
    running = nbp.submit("a slow fox", provider="gemini", base_url=slow.url, api_key="k",
                         fallback=False, retries=0)
    try:
        with pytest.raises(ConfigError, match="still running"):
            nbp.refine(running.id, "darker", **_opts(slow))
    finally:
        running.cancel()
    with pytest.raises(ConfigError, match="no job 'nope'"):
        nbp.refine("nope", "darker", **_opts(server))


def _gateway(server, wire: str) -> dict:
    return dict(provider=wire, base_url=server.url, api_key="k", time_scale=SCALE, retries=0,
                model="nano-banana-pro" if wire == "openai" else "google/gemini-3-pro-image-preview")


@pytest.mark.parametrize("wire,route", [("openai", "/v1/images/edits"),
                                        ("chat", "/v1/chat/completions")])
def test_a_refine_through_a_gateway_edits_the_last_image(home, simulator, wire, route):
    """A gateway cannot carry the turns: the refine would be refused, or draw a fresh image
    that knows nothing of the picture it was asked to change."""
    first = nbp.submit("a red fox", **_opts(simulator))
    assert first.result().success
    second = first.refine("make the sky darker", **_gateway(simulator, wire))
    assert second.result().success, second.result().error
    edit = simulator.log[-1]
    assert (edit["path"], edit["references"], edit["prompt"]) == (
        route, 1, "make the sky darker")
    assert [t.number for t in nbp.conversation_of(second)] == [1, 2]
    # back on Gemini, the conversation starts again from the gateway's image
    third = second.refine("now from above", **_opts(simulator))
    assert third.result().success, third.result().error
    assert (simulator.log[-1]["turn"], simulator.log[-1]["references"]) == (1, 1)
    turns = nbp.conversation_of(third)
    assert [(t.number, t.parent) for t in turns] == [(1, None), (2, first.id), (3, second.id)]
    assert [p.path for p in turns[-1].references] == [turns[1].image_path]
    fourth = third.refine("at dusk", **_opts(simulator))  # the restart is kept as it went
    assert fourth.result().success, fourth.result().error
    # its images: the gateway's picture the third turn started from, and the third's answer
    assert (simulator.log[-1]["turn"], simulator.log[-1]["references"]) == (2, 2)


def test_a_refine_falls_back_to_a_gateway_as_an_edit(home, make_sim, monkeypatch):
    """The fallback step to a gateway would drop the picture and draw a new one."""
    server = make_sim(profile="ideal", script="ok, 503")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("NBP_OPENAI_BASE_URL", server.url)
    first = nbp.submit("a red fox", **_opts(server))
    first.result()
    got = first.refine("darker", fallback="openai:1K", **_opts(server)).result()
    assert got.success, got.error
    assert [(e["path"].rsplit(":", 1)[-1], e["status"]) for e in server.log] == [
        ("generateContent", 200), ("generateContent", 503), ("/v1/images/edits", 200)]


def test_the_simulators_turns_are_not_sent_to_gemini(home, simulator):
    """A conversation begun keyless would reach the real service with signatures it never
    issued, and fail there with "Corrupted thought signature"."""
    first = nbp.submit("a red fox", provider="sim", time_scale=SCALE, sim_profile="ideal")
    assert first.result().success
    with pytest.raises(ConfigError, match="made by the simulator; its thought signatures"):
        first.refine("darker", **_opts(simulator))
    assert simulator.log == []
    assert first.refine("darker", provider="sim", time_scale=SCALE,
                        sim_profile="ideal").result().success


def test_a_refine_falls_back_with_its_turns(home, make_sim):
    """A fallback step would drop the conversation and draw a fresh image at the smaller size."""
    server = make_sim(profile="ideal", script="ok, 503")
    first = nbp.submit("a red fox", size="2K", **_opts(server))
    first.result()
    got = first.refine("darker", fallback="1K", **_opts(server)).result()
    assert got.success and got.resolution == "1K" and got.refines == first.id
    assert [(e["turn"], e["status"], e["size"]) for e in server.log] == [
        (1, 200, "2K"), (2, 503, "2K"), (2, 200, "1K")]


def test_draft_images_are_not_kept_or_sent_back(home, make_sim):
    """Sending the thought drafts back (or keeping them as the turn's image) would confuse
    the model, break the signature positions, and weigh megabytes per turn."""
    server = make_sim(profile="ideal", script="thought")
    first = nbp.submit("a red fox", **_opts(server))
    assert first.result().success
    (turn,) = nbp.conversation_of(first)
    assert [p.is_image for p in turn.model_parts] == [False, True]
    assert turn.image_path == str(first.result().image_path)
    assert nbp.refine(first, "darker", **_opts(server)).result().success
    assert server.log[-1]["status"] == 200


def test_a_new_turns_references_are_sent_again_later(home, simulator, tmp_path):
    """A later refine would forget the logo a turn asked for, or send a deleted file."""
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(logo)
    first = nbp.submit("a white mug", **_opts(simulator))
    first.result()
    second = first.refine("put this logo on the mug", images=[logo], **_opts(simulator))
    assert second.result().success
    assert [p.path for p in nbp.conversation_of(second)[-1].references] == [str(logo.resolve())]
    assert second.refine("make the mug blue", **_opts(simulator)).result().success
    logo.unlink()
    with pytest.raises(ConfigError, match="reference image .*logo.png is missing"):
        second.refine("make the mug green", **_opts(simulator))


def test_a_request_over_the_inline_limit_is_refused_with_the_way_out():
    """The service would refuse it after the upload, or a 4K conversation would time out."""
    image = Part(path="x.png", mime="image/png", signature="s", data=bytes(8 << 20))
    history = (Turn("user", (Part(text="a fox"),)), Turn("model", (image,)),
               Turn("user", (Part(text="darker"),)), Turn("model", (image,)))
    conversation.check_size(Request(prompt="more", history=history[:2]))  # 10.7 MB: fine
    with pytest.raises(ConfigError) as info:
        conversation.check_size(Request(prompt="more", history=history))
    message = info.value.one_line()
    assert "21.3 MB" in message and "over the service's 20 MB limit" in message
    assert "fewer turns" in message and "smaller references" in message
    assert conversation.request_bytes(Request(prompt="more", history=history)) > \
        MAX_INLINE_REQUEST_BYTES


def test_a_ledger_from_before_conversations_gets_its_table(home, simulator):
    """Opening an older ledger would crash, or a refine of its jobs would send garbage."""
    home.mkdir(parents=True)
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, session TEXT, pid INTEGER,"
                   " created REAL, finished REAL, prompt TEXT, requested TEXT, aspect TEXT,"
                   " model TEXT, provider TEXT, status TEXT, resolution TEXT, width INTEGER,"
                   " height INTEGER, image_path TEXT, attempts INTEGER, elapsed_s REAL,"
                   " cost_usd REAL, cost_unknown_usd REAL, error TEXT, simulated INTEGER,"
                   " downgraded INTEGER, silent_downgrade INTEGER)")
        db.execute("INSERT INTO jobs (id, status, requested, aspect) VALUES"
                   " ('old001', 'done', '1K', '1:1')")
    with pytest.raises(ConfigError, match="no recorded conversation turn"):
        nbp.refine("old001", "darker", **_opts(simulator))
    assert nbp.conversation_of("old001") == []


def _post(server, contents):
    body = {"contents": contents, "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}
    return httpx.post(f"{server.url}/v1beta/models/gemini-3-pro-image-preview:generateContent",
                      headers={"x-goog-api-key": "k"}, json=body, timeout=30)


@pytest.mark.parametrize("damage,message", [
    ("drop_image", "Image part is missing a thought_signature in content position 2, "
                   "part position 2."),
    ("drop_text", "Text part is missing a thought_signature in content position 2, "
                  "part position 1."),
    ("foreign", "Corrupted thought signature."),
    ("moved", "Corrupted thought signature."),
])
def test_the_simulator_refuses_missing_and_foreign_signatures(simulator, damage, message):
    """Our client could drop signatures, as LangChain's did, and every test would pass."""
    answer = _post(simulator, [{"role": "user", "parts": [{"text": "a fox"}]}]).json()
    model = answer["candidates"][0]["content"]
    text, image = model["parts"][-2], model["parts"][-1]
    if damage == "drop_image":
        image.pop("thoughtSignature")
    elif damage == "drop_text":
        text.pop("thoughtSignature")
    elif damage == "foreign":
        image["thoughtSignature"] = base64.b64encode(b"never issued").decode()
    else:  # a real signature, on another part than it was issued for
        image["thoughtSignature"] = text["thoughtSignature"]
    later = [{"role": "user", "parts": [{"text": "a fox"}]}, model,
             {"role": "user", "parts": [{"text": "darker"}]}]
    refused = _post(simulator, later)
    assert refused.status_code == 400
    assert refused.json()["error"] == {"code": 400, "status": "INVALID_ARGUMENT",
                                       "message": message}


@pytest.mark.parametrize("damage", ["{cut", "[1]", '{"text": "a"}'])
def test_a_damaged_turn_row_is_a_one_line_error_and_loses_nothing(home, simulator, damage):
    """A hand-edited or cut ledger cell would end a refine with a JSON traceback wall."""
    first = nbp.submit("a red fox", **_opts(simulator))
    first.result()
    second = first.refine("darker", **_opts(simulator))
    kept = second.result().image_path
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        db.execute("UPDATE turns SET parts=? WHERE job_id=?", (damage, first.id))
    sent = len(simulator.log)
    for call in (lambda: second.refine("from above", **_opts(simulator)),
                 lambda: nbp.conversation_of(second)):
        with pytest.raises(ConfigError) as info:
            call()
        message = info.value.one_line()
        assert "\n" not in message and f"job {first.id} is damaged" in message
    assert len(simulator.log) == sent and kept.is_file()


def test_a_refines_request_is_built_off_the_engine_loop(home, simulator, monkeypatch):
    """A refine's 20 MB of turns built on the loop stalls every other job's clock for 0.1 s."""
    import threading

    from nbp_jupyter.providers import gemini

    threads = []
    original = gemini.build

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)
    monkeypatch.setattr(gemini, "build", spy)
    first = nbp.submit("a red fox", **_opts(simulator))
    assert first.result().success
    assert first.refine("darker", **_opts(simulator)).result().success
    assert len(threads) == 2 and "nbp-jobs" not in threads, threads


def test_a_loop_of_parents_in_the_ledger_is_one_line_and_short(home, simulator):
    """Two turns naming each other as parent were read (and drawn) 10,000 times over."""
    first = nbp.submit("a red fox", **_opts(simulator))
    assert first.result().success
    second = first.refine("darker", **_opts(simulator))
    assert second.result().success
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        db.execute("UPDATE turns SET parent_id=? WHERE job_id=?", (second.id, first.id))
    assert [t.job_id for t in nbp.conversation_of(second)] == [first.id, second.id]
    with pytest.raises(ConfigError, match="is cut") as info:
        second.refine("from above", **_opts(simulator))
    assert "\n" not in info.value.one_line()
