"""A served request belongs to the window it arrived in: MLflow's real scoring app behind
our middleware, a real pyfunc model that answers only after the next window has begun,
and a real ``Capture`` whose buffered records are read before any aggregation."""

from __future__ import annotations

import time

import mlflow
import pandas as pd
from fastapi.testclient import TestClient

from mlflow_monitor.production import Capture
from mlflow_monitor.production.records import CaptureRecord
from mlflow_monitor.production.server import build_app


class _SlowModel(mlflow.pyfunc.PythonModel):
    """Answers 0.3 s into the window after the one the call arrived in."""

    def predict(self, context, model_input, params=None):
        now = time.time()
        time.sleep(1.0 - now % 1.0 + 0.3)
        return [0] * len(model_input)


def test_a_slow_answer_stays_in_the_window_the_request_arrived_in(tmp_path):
    path = str(tmp_path / "model")
    mlflow.pyfunc.save_model(path, python_model=_SlowModel())
    model = mlflow.pyfunc.load_model(path)
    cap = Capture("m", "1", window="1s", state_dir=tmp_path / "state", deliver=False)
    try:
        cap.aggregator.stop(5)  # the records stay in the buffer, as the middleware wrote them
        app = TestClient(build_app(model, cap))
        frame = pd.DataFrame({"x": [1.0, 2.0]})
        if time.time() % 1.0 > 0.5:  # send early in a window: the arrival cannot cross into the next
            time.sleep(1.05 - time.time() % 1.0)
        sent = time.time()
        ok = app.post("/invocations", json={"dataframe_split": frame.to_dict(orient="split")})
        answered = time.time()
        bad = app.post("/invocations", content=b"{not json", headers={"Content-Type": "application/json"})
        assert ok.status_code == 200 and bad.status_code == 400
        assert int(answered) > int(sent)  # the answer came in a later window
        records = [CaptureRecord(*r) for r in cap._buffer]
        assert len(records) == 2
        # stamped at arrival: between the send and the model's answer, in the send's window
        assert sent <= records[0].timestamp < int(sent) + 1, (sent, records[0].timestamp, answered)
        assert records[1].timestamp >= answered  # the error arrived after the first answer
    finally:
        cap.close(5)
