"""π-POS: checkout, pay-by-face (online or offline within JOY-CRED), receipts, drawer, refunds, audit."""
