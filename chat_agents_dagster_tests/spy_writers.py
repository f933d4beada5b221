"""`python -m chat_agents_dagster_tests.spy_writers`: the standalone load and the governance
tables' derivation after it, configured as a user's would be, with a spy on dlt's real file
writer; prints, as its last line, a JSON list of every writer dlt opened: [file format, rows
buffered before writing, compressed]."""

import json
import sys
from typing import Any

from dlt.common.data_writers.buffered import BufferedDataWriter

from chat_agents_dagster.source import make_pipeline, run_governance, run_load

writers: list[tuple[str, int, bool]] = []
real_init = BufferedDataWriter.__init__


def spy(self: BufferedDataWriter[Any], *args: Any, **kwargs: Any) -> None:
    real_init(self, *args, **kwargs)
    writers.append((self.writer_spec.file_format, self.buffer_max_items, self.should_compress))


BufferedDataWriter.__init__ = spy  # type: ignore[method-assign]
run_load(make_pipeline())
run_governance()
sys.stdout.write(json.dumps(sorted(set(writers))) + "\n")
