"""Marketing (D客): tag expressions, campaigns and coupon issue, online and offline redemption."""
