"""The magics in a real kernel: non-blocking cells, output in the right cell, cancel, restart."""

from __future__ import annotations

import json

import pytest

from .kernel import Kernel

SCALE = 0.2  # ideal profile: a 1K call takes ~1 s, long enough to run other cells meanwhile


@pytest.fixture
def kernel(tmp_path, make_sim):
    server = make_sim(profile="ideal", time_scale=SCALE)
    env = {"NBP_HOME": str(tmp_path / "home"), "NBP_PROVIDER": "gemini",
           "NBP_BASE_URL": server.url, "NBP_API_KEY": "kernel-test-key",
           "NBP_TIME_SCALE": str(SCALE), "NBP_WAIT": ""}
    k = Kernel(env)
    assert k.run("%load_ext nbp_jupyter")["status"] == "ok"
    k.sim = server
    yield k
    k.close()


def displays(k: Kernel, cell_id: str) -> dict[str, list[dict]]:
    """display_id -> every bundle sent for it, starting from the one shown in `cell_id`."""
    ids = [m["content"]["transient"]["display_id"] for m in k.iopub
           if m["msg_type"] == "display_data" and m["parent_header"].get("msg_id") == cell_id
           and "display_id" in m["content"].get("transient", {})]
    return {i: [m["content"]["data"] for m in k.iopub
                if m["msg_type"] in ("display_data", "update_display_data")
                and m["content"].get("transient", {}).get("display_id") == i] for i in ids}


def test_cell_returns_before_the_job_ends_and_results_land_in_their_own_cells(kernel):
    """Two overlapping jobs in two cells each end with their own image, while a third runs."""
    a = kernel.submit("%%nbp --out job_a\nalpha lighthouse")
    assert kernel.reply(a)["status"] == "ok"
    assert kernel.eval("job_a.done()") == "False"  # the cell came back first
    b = kernel.submit("%%nbp --out job_b\nbeta windmill")
    kernel.reply(b)
    c = kernel.submit("import time; time.sleep(3 * 1.0); print('third cell ran')")
    kernel.reply(c, timeout=30)
    assert "third cell ran" in kernel.text(c)
    kernel.drain(1.5)
    for cell, word in ((a, "alpha"), (b, "beta")):
        images, texts = displays(kernel, cell).values()  # the image's place, then the line
        final = texts[-1]
        assert 'class="nbp-result ' in final["text/html"], word
        assert "1K → 1K" in final["text/plain"] and "data:image" not in final["text/html"]
        assert "image/jpeg" in images[-1] and word in images[-1]["text/plain"]
        assert len(images) == 2  # empty, then the image once
        assert 1 < len(texts) <= 8  # a few status updates, about one a second, then the caption


def test_status_line_says_what_to_expect(kernel):
    """While running, the line shows size, attempt, elapsed, expectation, timeout and cancel."""
    cell = kernel.submit("%%nbp --size 4K\nslow one")
    kernel.reply(cell)
    kernel.drain(0.5)
    _, texts = displays(kernel, cell).values()
    first = texts[0]["text/plain"]
    for words in ("4K", "usually", "%nbp_cancel"):
        assert words in first, first


def test_cancel_and_wait(kernel):
    """%nbp_cancel stops a hanging job; --wait blocks until the image is there."""
    kernel.sim.set_script("hang")
    assert kernel.run("%%nbp --out stuck\nnever answers")["status"] == "ok"
    kernel.run("import time; time.sleep(0.5)")
    assert kernel.run(f"%nbp_cancel {kernel.eval('stuck.id')}")["status"] == "ok"
    kernel.run("stuck.result(10)")
    assert kernel.eval("stuck.status") == "cancelled"
    assert kernel.eval("stuck.result().attempts[0].billed") == "unknown"
    assert kernel.run("%%nbp --wait --out waited\nwait for me")["status"] == "ok"
    assert kernel.eval("waited.done(), waited.result().success") == "True True"


def test_wait_with_a_timeout_says_what_still_runs(kernel):
    """%nbp_wait --timeout ended in silence while a job still ran, which read as all done."""
    kernel.sim.set_script("hang")
    assert kernel.run("%%nbp --out stuck\nnever answers")["status"] == "ok"
    cell = kernel.submit("%nbp_wait --timeout 0.3")
    assert kernel.reply(cell)["status"] == "ok"
    job = kernel.eval("stuck.id")
    assert f"still running: {job}" in kernel.text(cell)
    kernel.run("stuck.cancel(); stuck.result(10)")


@pytest.mark.parametrize("cell,words", [
    ("%%nbp --size 8K\nx", "unknown size '8K'"),
    ("%%nbp --aspect 5:3\nx", "unsupported aspect '5:3'"),
    ("%%nbp --image /nope.png\nx", "not found"),
    ("%%nbp\n   \n", "prompt is empty"),
    ("%%nbp --provider openai\nx", "no API key for provider 'openai'"),
    ("%%nbp --interpolate\n{undefined_name}", "--interpolate could not fill"),
    ("%%nbp --bogus\nx", "unrecognized arguments"),
    ("%nbp_cancel", "name a job id"),
    ("%nbp_show nope", "no job 'nope'"),
    ("%nbp_history --limit 0", "--limit must be 1 or more"),  # was every job in the ledger
    ("%nbp_panel --budget -3", "--budget must be above 0"),  # was silently no budget
])
def test_bad_input_is_a_one_line_usage_error(kernel, cell, words):
    """Every user mistake is one line, no traceback, before any request."""
    if "--provider openai" in cell:  # NBP_API_KEY would serve any provider: drop it
        kernel.run("import os; os.environ.pop('NBP_API_KEY')")
    before = len(kernel.sim.log)
    reply = kernel.run(cell)
    assert reply["status"] == "error" and reply["ename"] == "UsageError"
    assert words in reply["evalue"] and "\n" not in reply["evalue"]
    assert reply["traceback"] == []
    assert len(kernel.sim.log) == before


def test_a_bad_config_default_is_one_line_in_the_cell(kernel):
    """`%config Nbp.size = "8K"` was silent in a notebook; the next %%nbp failed instead."""
    cell = kernel.submit('%config Nbp.size = "8K"')
    assert kernel.reply(cell)["status"] == "ok"
    said = kernel.text(cell).strip()
    assert "Nbp.size = '8K' refused" in said and "1K, 2K, 4K" in said and "\n" not in said
    assert kernel.eval("get_ipython().run_line_magic('config', 'Nbp.size')") == "1K"


@pytest.mark.parametrize("call,words", [
    ("nbp.generate('x', size='8K')", "unknown size '8K': use one of 1K, 2K, 4K"),
    ("nbp.submit('x', provider='openai', base_url='http://example.com', api_key='k')",
     "plain http to example.com — use https"),
    ("nbp.panel(provider='nope')", "unknown provider 'nope' — use one of"),
])
def test_bad_input_to_the_python_api_is_one_line_too(kernel, call, words):
    """nbp.generate(size='8K') in a notebook showed a wall of library frames to find the
    one line that says what to do; it is that line alone, with its hint."""
    before = len(kernel.sim.log)
    reply = kernel.run(f"import nbp_jupyter as nbp\n{call}")
    assert reply["status"] == "error" and reply["ename"] in ("ConfigError", "InsecureTransport")
    assert len(reply["traceback"]) == 1 and "\n" not in reply["traceback"][0]
    assert words in reply["traceback"][0]
    assert len(kernel.sim.log) == before


def test_history_survives_a_restart_and_marks_interrupted_jobs(kernel):
    """After a kernel restart, finished jobs are in %nbp_history --all; a job cut off by the
    restart shows as interrupted with unknown cost, and its old status line is rewritten."""
    kernel.run("%%nbp --wait --out done_job\nkept across restarts")
    done_id = kernel.eval("done_job.id")
    kernel.sim.set_script("hang")
    kernel.run("%%nbp --size 4K --out lost\ncut off by the restart")
    lost_id = kernel.eval("lost.id")
    kernel.run("import time\nwhile lost.attempt < 1: time.sleep(0.05)")
    kernel.restart()
    load = kernel.submit("%load_ext nbp_jupyter")
    assert kernel.reply(load)["status"] == "ok"
    # the status line the dead kernel left says 'running' forever unless we rewrite it
    update = cell_html(kernel, load)
    assert "Cut off when the previous kernel stopped" in update and lost_id in update
    states = json.loads(update.split("var states = ", 1)[1].split(";\n", 1)[0])
    assert states[lost_id]["status"] == "interrupted" and "$0.240 unknown" in states[lost_id]["text"]
    assert "ran ≤ " in states[lost_id]["text"] and states[done_id]["status"] == "done"
    jobs_cell = kernel.submit("%nbp_jobs")
    kernel.reply(jobs_cell)
    assert f'"{lost_id}"' in cell_html(kernel, jobs_cell)  # %nbp_jobs sends it again
    cell = kernel.submit("%nbp_history --all")
    kernel.reply(cell)
    kernel.drain(0.3)
    html = "".join(m["content"].get("data", {}).get("text/html", "") for m in kernel.iopub
                   if m["parent_header"].get("msg_id") == cell)
    assert done_id in html and lost_id in html and "interrupted" in html
    row = kernel.eval(f"[(r['status'], r['cost_unknown_usd']) for r in __import__('nbp_jupyter').history() if r['id'] == '{lost_id}']")
    assert row == "[('interrupted', 0.24)]"


def cell_html(k: Kernel, cell: str) -> str:
    k.drain(0.3)
    return "".join(m["content"].get("data", {}).get("text/html", "") for m in k.iopub
                   if m["parent_header"].get("msg_id") == cell)


def test_jobs_show_and_config_tables(kernel):
    """%nbp_jobs lists the job, %nbp_show re-displays its file, %nbp_config hides the key."""
    kernel.run("%%nbp --wait --out j\na red kite")
    job_id = kernel.eval("j.id")
    tables = {name: kernel.submit(code) for name, code in (
        ("jobs", "%nbp_jobs"), ("show", f"%nbp_show {job_id}"), ("config", "%nbp_config"))}
    for cell in tables.values():
        kernel.reply(cell)
    assert job_id in cell_html(kernel, tables["jobs"]) and "a red kite" in cell_html(kernel, tables["jobs"])
    assert any("image/jpeg" in m["content"].get("data", {}) for m in kernel.iopub
               if m["parent_header"].get("msg_id") == tables["show"])
    config = cell_html(kernel, tables["config"])
    assert "kernel-test-key" not in config and "<td>api_key</td><td>set</td>" in config


def test_kernel_answers_with_300_jobs_in_flight(kernel):
    """300 submitted jobs do not hold the kernel: a cell runs while all are pending."""
    kernel.sim.set_script(",".join(["hang"] * 300))
    kernel.run("import nbp_jupyter as nbp\n"
               "many = [nbp.submit(f'm{i}', size='1K', timeout=1e6) for i in range(300)]")
    assert kernel.eval("sum(not j.done() for j in many), 6 * 7") == "300 42"
    kernel.run("%nbp_cancel --all")
    assert kernel.eval("all(j.result(30).error for j in many)") == "True"


def test_a_refine_after_a_restart_continues_the_conversation(kernel):
    """After a kernel restart the conversation lives only in the ledger and the image files:
    a refine would be refused, or draw a fresh image that knows nothing of the first."""
    kernel.run("%%nbp --wait --size 2K --aspect 16:9 --out first\na red fox in snow")
    first_id = kernel.eval("first.id")
    kernel.restart()
    assert kernel.run("%load_ext nbp_jupyter")["status"] == "ok"
    cell = kernel.submit(f"%%nbp --wait --refine {first_id} --out second\nmake the sky darker")
    assert kernel.reply(cell)["status"] == "ok"
    second_id = kernel.eval("second.id")
    third = kernel.submit("%%nbp --wait --refine _\nnow seen from above")
    assert kernel.reply(third)["status"] == "ok"
    kernel.drain(0.5)
    for cell_id, turn, refined in ((cell, 2, first_id), (third, 3, second_id)):
        captions = [bundle["text/plain"] for bundles in displays(kernel, cell_id).values()
                    for bundle in bundles if "→" in bundle.get("text/plain", "")]
        assert captions and captions[-1].startswith(f"turn {turn} · refines {refined} · 2K → 2K")
    assert [(e["turn"], e["status"], e["size"], e["aspect"]) for e in kernel.sim.log] == [
        (1, 200, "2K", "16:9"), (2, 200, "2K", "16:9"), (3, 200, "2K", "16:9")]
    bad = kernel.run("%%nbp --refine nope\nx")
    assert bad["status"] == "error" and bad["ename"] == "UsageError"
    assert "no job 'nope'" in bad["evalue"] and "\n" not in bad["evalue"]
