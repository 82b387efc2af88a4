"""A model version that does not beat its trivial baseline is marked and needs an override to deploy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from _api_helpers import Hub, make_hub, seed_org
from axhub.ml.anomaly import MSPC
from axhub.ml.baseline import always_alarm_f1, constant_rmse, majority_accuracy, with_baseline
from axhub.registry.store import ModelRegistry
from axhub.store.blobs import BlobStore
from axhub.store.platform import org_by_slug
from axhub.store.scoped import OrgScope


def test_baselines_are_the_best_constant_answers() -> None:
    assert majority_accuracy(np.array(["a", "a", "b", "a"])) == 0.75
    assert always_alarm_f1(np.array([1, 1, 0, 0])) == pytest.approx(2 * 0.5 / 1.5)
    assert always_alarm_f1(np.zeros(5)) == 0.0
    assert constant_rmse(np.array([0.0, 2.0])) == 1.0
    assert with_baseline({"f1": 0.5}, "f1", 0.6, higher_is_better=True)["beats_baseline"] == 0.0
    assert with_baseline({"rmse": 5.0}, "rmse", 6.0, higher_is_better=False) == {
        "rmse": 5.0,
        "baseline_rmse": 6.0,
        "beats_baseline": 1.0,
    }


def _anomaly_data(seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 3))
    label = np.zeros(400, dtype=int)
    if shifted:
        x[200:260] += 6.0
        label[200:260] = 1
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "anomaly": label})


def test_evaluation_marks_a_detector_below_its_baseline_and_deploy_needs_an_override(tmp_path: Path) -> None:
    model = MSPC(columns=["a", "b", "c"]).fit(_anomaly_data(0, shifted=False).drop(columns="anomaly"))
    good = model.evaluate(_anomaly_data(1, shifted=True))
    assert good["beats_baseline"] == 1.0 and good["f1"] > good["baseline_f1"]
    # labels that the signals do not show: the detector is worse than always alarming
    blind = _anomaly_data(2, shifted=False)
    blind.loc[100:300, "anomaly"] = 1
    bad = model.evaluate(blind)
    assert bad["beats_baseline"] == 0.0 and bad["f1"] < bad["baseline_f1"]

    hub: Hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}")
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-baseline")
        with hub.db.session() as s:
            scope = OrgScope(s, org_by_slug(s, "acme").id)
            registry = ModelRegistry(scope, BlobStore(hub.settings.blob_root))
            bundle = model.save(tmp_path / "bundle", make_zip=True)
            weak = registry.register(bundle, name="weak", metrics=bad)
            strong = registry.register(bundle, name="strong", metrics=good)
            weak_id, strong_id = weak.id, strong.id
        assert c.get(f"/api/v1/models/{weak_id}").json()["beats_baseline"] is False
        assert c.get(f"/api/v1/models/{strong_id}").json()["beats_baseline"] is True
        r = c.post("/api/v1/deployments", json={"model_version_id": weak_id, "asset_id": ids["asset"]})
        assert r.status_code == 409, r.text
        assert "baseline" in r.text
        assert c.get("/api/v1/deployments").json()["total"] == 0  # nothing stored on refusal
        r = c.post(
            "/api/v1/deployments",
            json={"model_version_id": weak_id, "asset_id": ids["asset"], "allow_below_baseline": True},
        )
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/deployments", json={"model_version_id": strong_id, "asset_id": ids["asset"]})
        assert r.status_code == 201, r.text


def test_sdk_and_cli_deploy_need_the_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from axhub.cli.main import app
    from axhub.client import AxHubApiError, AxHubClient

    hub = make_hub(tmp_path / "hub", f"sqlite:///{tmp_path / 'meta.db'}")
    model = MSPC(columns=["a", "b", "c"]).fit(_anomaly_data(0, shifted=False).drop(columns="anomaly"))
    with hub.client("a_engineer") as c:
        ids = seed_org(c, "-cli")
        with hub.db.session() as s:
            scope = OrgScope(s, org_by_slug(s, "acme").id)
            weak = ModelRegistry(scope, BlobStore(hub.settings.blob_root)).register(
                model.save(tmp_path / "bundle", make_zip=True),
                name="weak",
                metrics={"f1": 0.1, "baseline_f1": 0.7, "beats_baseline": 0.0},
            )
            weak_id = weak.id
        sdk = AxHubClient("https://testserver", api_key=hub.keys["a_engineer"], transport=c._transport)
        with pytest.raises(AxHubApiError) as refused:
            sdk.deploy(weak_id, ids["asset"])
        assert refused.value.status == 409 and "baseline" in str(refused.value)
        # the CLI goes through the same SDK call; its flag is the override
        monkeypatch.setattr("axhub.cli.platform._client", lambda: sdk)
        runner = CliRunner()
        listed = runner.invoke(app, ["models", "list"])
        assert listed.exit_code == 0 and "NO" in listed.output
        denied = runner.invoke(app, ["models", "deploy", weak_id, "--asset", ids["asset"]])
        assert denied.exit_code != 0 and "baseline" in denied.output
        done = runner.invoke(
            app, ["models", "deploy", weak_id, "--asset", ids["asset"], "--allow-below-baseline"]
        )
        assert done.exit_code == 0, done.output
        assert sdk.get("/deployments")["total"] == 1
