"""Local training of the shared torch model on one member's arrays (FedAvg / FedProx).

The model is deliberately small (an MLP over a member's feature vectors) so that rounds are
cheap on CPU; the task says its size. FedProx adds ``mu/2 ||w - w_global||²`` to the local
loss, which keeps heterogeneous members from drifting apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class FedTask:
    """What the collaboration learns; every member builds the same network from it."""

    kind: Literal["regression", "classification"]
    n_features: int
    n_outputs: int = 1  # classes for classification
    hidden: int = 64
    lr: float = 1e-3
    local_epochs: int = 1
    batch_size: int = 256
    proximal_mu: float = 0.0  # 0 = FedAvg
    target_scale: float = 1.0  # regression targets are divided by it while training
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FedTask:
        return cls(**raw)


def build_net(task: FedTask) -> Any:
    import torch

    torch.manual_seed(task.seed)
    return torch.nn.Sequential(
        torch.nn.Linear(task.n_features, task.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(task.hidden, task.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(task.hidden, task.n_outputs),
    )


def get_params(net: Any) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in net.state_dict().values()]


def set_params(net: Any, params: list[np.ndarray]) -> None:
    import torch

    keys = list(net.state_dict().keys())
    if len(keys) != len(params):
        raise ValueError(f"expected {len(keys)} parameter arrays, got {len(params)}")
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in zip(keys, params, strict=True)})


def train_local(
    task: FedTask, params: list[np.ndarray], x: np.ndarray, y: np.ndarray, *, seed: int
) -> list[np.ndarray]:
    """``task.local_epochs`` of Adam from the global ``params``; the new parameters."""
    from axhub.ml.threads import limited_torch_threads

    # Small networks on shared cores: one thread (AXHUB_TORCH_THREADS), as the hub's models do.
    with limited_torch_threads():
        return _train_local(task, params, x, y, seed=seed)


def _train_local(
    task: FedTask, params: list[np.ndarray], x: np.ndarray, y: np.ndarray, *, seed: int
) -> list[np.ndarray]:
    import torch

    torch.manual_seed(seed)
    net = build_net(task)
    set_params(net, params)
    anchor = [torch.from_numpy(np.asarray(p)).clone() for p in params]
    opt = torch.optim.Adam(net.parameters(), lr=task.lr)
    xt = torch.from_numpy(x.astype(np.float32))
    if task.kind == "regression":
        yt = torch.from_numpy((y / task.target_scale).astype(np.float32)).reshape(-1, 1)
        loss_fn: Any = torch.nn.MSELoss()
    else:
        yt = torch.from_numpy(y.astype(np.int64))
        loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(task.local_epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), task.batch_size):
            idx = order[start : start + task.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            if task.proximal_mu > 0:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(net.parameters(), anchor, strict=True))
                loss = loss + task.proximal_mu / 2 * prox
            loss.backward()
            opt.step()
    return get_params(net)


def predict(task: FedTask, params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    import torch

    from axhub.ml.threads import limited_torch_threads

    net = build_net(task)
    set_params(net, params)
    net.eval()
    with limited_torch_threads(), torch.no_grad():
        out = net(torch.from_numpy(x.astype(np.float32))).numpy()
    if task.kind == "regression":
        return out.reshape(-1).astype(np.float64) * task.target_scale
    return out.argmax(axis=1)


def evaluate(task: FedTask, params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Metrics on a member's own data: rmse/mae or accuracy, and the training loss."""
    pred = predict(task, params, x)
    if task.kind == "regression":
        err = pred - y
        rmse = float(np.sqrt(np.mean(err**2)))
        return {"rmse": rmse, "mae": float(np.mean(np.abs(err))), "loss": (rmse / task.target_scale) ** 2}
    acc = float(np.mean(pred == y))
    return {"accuracy": acc, "loss": 1.0 - acc}


def fit_centrally(task: FedTask, x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> list[np.ndarray]:
    """The same network trained on one site's (or the pooled) data: the local-only and pooled
    baselines, with as many epochs as the federated run gives in total."""
    import dataclasses

    once = dataclasses.replace(task, local_epochs=epochs, proximal_mu=0.0)
    return train_local(once, get_params(build_net(task)), x, y, seed=seed)
