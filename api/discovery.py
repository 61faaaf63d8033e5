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
