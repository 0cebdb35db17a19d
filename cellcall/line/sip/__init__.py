"""SIP as a third Line: the same goals, loop, reports and watch over a SIP account (see line.py)."""

from cellcall.line.sip.line import SipLine
from cellcall.line.sip.options import SipOptions, sip_options

__all__ = ["SipLine", "SipOptions", "sip_options"]
