"""The broker taskiq's CLI finds: `taskiq worker workers.broker:broker` (`herald worker`)."""

from herald.broker import make_broker
from herald.config import get_settings

broker = make_broker(get_settings())
