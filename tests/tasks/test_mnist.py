import gzip

import numpy as np
import pytest
from helpers import SHARED

from grokscope.errors import CorruptFileError, UsageError
from grokscope.tasks.mnist import load_mnist, read_idx

MNIST = SHARED / "data" / "mnist"


pytestmark = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="needs ../shared/data/mnist")


def test_reads_the_official_test_set():
    images, labels = load_mnist(MNIST, "t10k")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.max() == 255 and images.min() == 0


def test_damaged_files_give_clear_errors(tmp_path):
    data = (MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="md5"):
        read_idx(bad)
    with pytest.raises(CorruptFileError, match="not a complete gzip file"):
        read_idx(bad, verify=False)
    raw = gzip.decompress(data)
    cut = tmp_path / "cut-labels.gz"
    cut.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(CorruptFileError, match="header promises 10008 bytes, found 9998"):
        read_idx(cut)
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello world")
    with pytest.raises(CorruptFileError, match="bad magic"):
        read_idx(junk)
    with pytest.raises(UsageError, match="not downloaded by grokscope"):
        load_mnist(tmp_path / "nowhere")
