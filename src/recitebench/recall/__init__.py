"""Stage 4: recitation and scoring (certified teacher forcing, greedy decoders, graded outcomes).

The pipeline itself is `recall.recite.recite`, imported where it is used: it loads torch, which `--help`, `ls`,
`report` and `data build` do not need. (It is not re-exported here: the function shares its module's name, and a
package attribute named like a submodule becomes that submodule once anything imports it.)
"""

from ..schema import OUTCOMES
from .config import ReciteConfig
from .graded import grade

__all__ = ["OUTCOMES", "ReciteConfig", "grade"]
