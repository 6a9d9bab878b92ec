import socket

import pytest

from tinynas.data import downloads, load_dataset
from tinynas.errors import DatasetError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: connections are refused


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_offline_download_fails_at_once_with_the_fix(name, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached copy
    monkeypatch.setitem(downloads.DOWNLOAD_HOSTS, name, ("127.0.0.1", _closed_port()))
    with pytest.raises(DatasetError) as err:
        load_dataset(name)
    msg = str(err.value)
    assert "needs the internet" in msg and "--dataset path/to/folder_or.npz" in msg and name in msg
