"""The NumPy backend: each op of :mod:`poolnd.functional` is a family's function."""

from .._families.adaptive import adaptive_avg_pool as adaptive_avg_pool
from .._families.adaptive import adaptive_avg_pool_backward as adaptive_avg_pool_backward
from .._families.adaptive import adaptive_max_pool as adaptive_max_pool
from .._families.adaptive import adaptive_max_pool_backward as adaptive_max_pool_backward
from .._families.avg import avg_pool as avg_pool
from .._families.avg import avg_pool_backward as avg_pool_backward
from .._families.fractional import fractional_max_pool as fractional_max_pool
from .._families.fractional import fractional_max_pool_backward as fractional_max_pool_backward
from .._families.lp import lp_pool as lp_pool
from .._families.lp import lp_pool_backward as lp_pool_backward
from .._families.max import max_pool as max_pool
from .._families.max import max_pool_backward as max_pool_backward
from .._families.unpool import max_unpool as max_unpool
from .._families.unpool import max_unpool_backward as max_unpool_backward
