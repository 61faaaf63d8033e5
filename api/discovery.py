"""Discovery contract: the zeroconf (mDNS/DNS-SD) service a JoyEdge device advertises on its LAN.

The device (device/advertise.py) registers `<device id>._joyedge._tcp.local.` with an SRV record
pointing at its admin API port and these TXT keys; `joyprov discover` browses for the type.
Pure Python: both sides import the names from here.
"""

SERVICE_TYPE = "_joyedge._tcp.local."
TXT_ID = "id"  # device id (the certificate's subject once enrolled)
TXT_PROFILE = "profile"  # mirror | pos-flagship | pos-mobile
TXT_VERSION = "version"  # joyedge software version
TXT_SITE = "site"  # site id (mall), empty before enrollment
TXT_KEYS = (TXT_ID, TXT_PROFILE, TXT_VERSION, TXT_SITE)
# Added with the not-provisioned notice (device/notice_advertise.py). A device without `state` is an
# older build's admin API: read it as ready.
TXT_STATE = "state"  # ready (the admin API of an enrolled device) | not-provisioned (first boot failed)
TXT_REASON = "reason"  # why it is not provisioned (UTF-8, at most TXT_REASON_MAX_BYTES, cut on a character)
TXT_NOTICE = "notice"  # HTTP port of the notice page (/ and /api/provisioning) on the same host
STATE_READY = "ready"
STATE_NOT_PROVISIONED = "not-provisioned"
# A TXT string is at most 255 bytes (RFC 6763 §6.1) including "reason=": 200 leaves room and a margin.
TXT_REASON_MAX_BYTES = 200
