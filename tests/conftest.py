import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def small_cnn():
    """A small CNN whose registration order differs from its forward order."""
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(16 * 4 * 4, 10)  # registered first, called last
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.bn2 = nn.BatchNorm2d(16)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn1(self.conv1(x))))
            x = self.pool(torch.relu(self.bn2(self.conv2(x))))
            return self.head(x.flatten(1))

    torch.manual_seed(0)
    return Net()


@pytest.fixture(scope="session")
def trained():
    """A LeNet trained briefly on digits, and the data; tests must not change it."""
    import pdbviz

    data = pdbviz.load_dataset("digits")
    model = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    pdbviz.fit(model, data, epochs=6, lr=3e-3, progress=False)
    return model, data


@pytest.fixture
def require_chromium():
    """Browser tests run where Chromium exists; under CI=true its absence is a failure, not a skip."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Chromium is required under CI (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path
