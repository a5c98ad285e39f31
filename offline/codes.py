"""Stock codes that are not products: postage, fees, manual corrections, samples, vouchers, tests.

They are handled explicitly: excluded from product statistics, baskets and labels, but counted
(and a postage line is a first-purchase feature: foreign wholesalers pay carriage).

>>> is_product_code("85123A"), is_product_code("POST"), is_product_code("test001")
(True, False, False)
>>> is_postage_code("DOT")
True
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Non-product stock codes (case-insensitive, whole code).
NON_PRODUCT_PATTERN = re.compile(
    r"^(POST|DOT|C2|M|D|S|B|CRUK|PADS|AMAZONFEE|BANK CHARGES|ADJUST\d*|TEST\w*|GIFT(_\w*)?"
    r"|SAMPLES|DCGS\w*)$",
    re.IGNORECASE,
)
#: Carriage / postage codes (a subset of the non-product codes).
POSTAGE_PATTERN = re.compile(r"^(POST|DOT|C2)$", re.IGNORECASE)


@lru_cache(maxsize=65_536)
def is_product_code(stock_code: str) -> bool:
    """True if the stock code is a real product (not postage, fees, adjustments, tests...)."""
    return NON_PRODUCT_PATTERN.match(stock_code.strip()) is None


@lru_cache(maxsize=65_536)
def is_postage_code(stock_code: str) -> bool:
    """True for carriage codes (`POST`, `DOT`, `C2`)."""
    return POSTAGE_PATTERN.match(stock_code.strip()) is not None
