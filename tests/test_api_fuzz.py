"""Schema-driven fuzzing of the live API (schemathesis): every generated request, valid or not,
gets an answer that the schema documents — never a server error, never an undocumented status,
content type or body shape.

The server runs as `make run` runs it, on the test database, without a worker: queued work stays
queued. Requests carry a real user's token, and path ids are, half of the time, that user's real
records, so the fuzzing reaches past the 404s into the views' own checks.
"""
import os
import signal
import subprocess
import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ROOT, free_port, subprocess_env, wait_for_port
from tests.training_web.conftest import make_ready_dataset

pytestmark = pytest.mark.worker

EXAMPLES = int(os.environ.get("FERWEB_FUZZ_EXAMPLES", "12"))  # per operation
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_server(transactional_db, settings, tmp_path, served_model):
    port = free_port()
    log = open(tmp_path / "web.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferweb.serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=subprocess_env(settings.MEDIA_ROOT), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
        yield type("Server", (), {"url": f"http://127.0.0.1:{port}", "log": tmp_path / "web.log"})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()


def real_ids(alice) -> list[int]:
    from ferweb.labeling.models import LabelingSet
    from training_jobs import services

    dataset = make_ready_dataset(alice, per_class=8)
    run = services.run_create(user=alice, dataset=dataset, config={"epochs": 1, "batch_size": 16}, queue=False)
    labeling = LabelingSet.objects.create(owner=alice, name="photos")
    return sorted({dataset.pk, run.pk, labeling.pk})


def fuzz(operation, base_url, headers, ids, failures):
    # Valid and invalid requests alike: invalid ones must get a documented 4xx, never a 500.
    cases = st.one_of(operation.as_strategy(), operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @given(case=cases, use_real=st.booleans(), pick=st.integers(0, len(ids) - 1))
    def run(case, use_real, pick):
        if use_real:
            for name in case.path_parameters or {}:
                if name in ("id", "pk"):
                    case.path_parameters[name] = ids[pick]
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001 - one report per operation is enough
            failures.setdefault(operation.label, f"{failure}"[:2000])

    run()


def test_every_generated_request_gets_a_documented_answer(api_server, alice):
    headers = {"Authorization": f"Token {Token.objects.create(user=alice).key}"}
    ids = real_ids(alice)
    schema = schemathesis.openapi.from_url(f"{api_server.url}/api/schema/", headers=headers)
    failures, tried = {}, 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1
        fuzz(operation, api_server.url, headers, ids, failures)
    assert tried >= 30
    report = "\n\n".join(f"{label}:\n{failure}" for label, failure in failures.items())
    assert not failures, f"{len(failures)} operations answered off-schema:\n{report}\n\nserver log:\n" + \
        api_server.log.read_text(errors="replace")[-3000:]
