"""fstmatch.explain imports and runs with torch and numpy only: the data stack, training and plotting
packages (extras in pyproject.toml) are blocked in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: packages of the extras (and other optional ones) that the engine must not need
BLOCKED = ("av", "dlib", "face_recognition_models", "albumentations", "cv2", "tensorboard", "sklearn", "scipy",
           "matplotlib", "yaml", "safetensors", "PIL", "torchvision", "timm", "captum", "shapiq", "tqdm")

SCRIPT = textwrap.dedent('''
    import sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    import torch
    torch.set_num_threads(1)
    from fstmatch.explain import face_concepts, shapley
    from fstmatch.hypotheses import q_metric, stability_of_model

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    x = torch.rand(2, 3, 16, 16)
    res = shapley(net, x, target=1, grid=4, budget=8)
    mask = torch.arange(256).view(16, 16) % 5
    by_mask = shapley(lambda b: net(b)[:, 0], x, feature_mask=mask, estimator="exact")
    assert res.to_pixels().shape == (2, 16, 16) and by_mask.values.shape == (2, 5)
    d = stability_of_model(net, x, x, x, target=0, grid=2, estimator="exact")
    assert abs(d.delta - 1) < 1e-9 and abs(q_metric(res, res, res)) >= 0
    assert not BLOCKED & {m.split(".")[0] for m in sys.modules}, sorted(BLOCKED & set(sys.modules))
    print("ok")
''')


def test_explain_runs_without_the_extras() -> None:
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(BLOCKED)], capture_output=True, text=True,
                         env={"PYTHONPATH": src, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
