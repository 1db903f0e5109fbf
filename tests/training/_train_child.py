"""Run by test_train.py in a child process that the test kills with SIGKILL or SIGINT."""
import json
import sys

from grokscope.config import RunConfig
from grokscope.errors import GrokscopeError
from grokscope.training import train

config = RunConfig.from_dict(json.loads(sys.argv[1]))
try:
    train(config, sys.argv[2], resume=len(sys.argv) > 3, progress=False)
except GrokscopeError as e:
    print(e, file=sys.stderr)
    sys.exit(e.exit_code)
