"""The money rules of partial refunds: line shares, the coupon on a refund, points taken back.

Pure functions over integer cents (no I/O), so the rule is in one place and testable by itself.

Line shares. A coupon's discount is spread over the sale pro rata: line i of a sale is worth
``floor(C_i * paid / amount) - floor(C_(i-1) * paid / amount)`` of the money paid, where C_i is the sum
of the list prices of lines 0..i. The shares add up to exactly what was paid (the rounding cents fall on
the later lines). Once a coupon has been given back (below), the shopper has paid full price for what
they kept, so a line is then worth its list price.

The coupon on a refund (issue 7, point 2):
    - the refunds reach everything paid (one full refund, or the last partial one): the coupon goes
      back to the member if it is still valid;
    - a partial refund keeps the coupon used while the goods the shopper keeps are still worth at least
      the coupon's threshold (at list price: kept money x amount / paid);
    - when they fall below the threshold, the shopper no longer qualifies for the discount: the
      discount share on the kept goods, floor(kept money x discount / paid) (rounded down, in the
      shopper's favour), is kept back from this refund (``clawback``), and the coupon goes back to the
      member if it is still valid — they paid full price for what they kept, so nobody loses a coupon
      or a discount. A refund too small to cover that clawback is refused.
    - a coupon without a threshold (a cash coupon) therefore goes back only with a full refund.
    It goes back at most once per sale; the cloud books it once per redemption (marketing/unredeem).

Points: the member keeps the points of what they still paid for. After a refund, the points taken
back in total are floor(points x refunded / paid), and all of them once everything is refunded: a
partial refund rounds down in the member's favour, and the refunds of a sale never take back more
than the sale gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Plan:
    """One refund as it will be booked."""

    gross_cents: int  # the money asked back (an amount, or the ticked lines' shares)
    clawback_cents: int  # coupon discount kept back (threshold no longer met)
    points: int  # points taken back by this refund
    coupon: str  # "" (no coupon) | "kept" | "restored" | "expired"
    lines: list[int] = field(default_factory=list)
    kept_list_cents: int = 0  # what the shopper keeps, at list price (compared with the threshold)
    threshold_cents: int = 0  # the coupon's threshold (0: none, or no coupon)

    @property
    def net_cents(self) -> int:
        """What the shopper gets back."""
        return self.gross_cents - self.clawback_cents


def line_shares(lines: list[int], amount: int, paid: int, full_price: bool = False) -> list[int]:
    """Each line's worth in money paid (see the module docstring)."""
    if full_price or amount <= 0:
        return list(lines)
    out, cum, before = [], 0, 0
    for cents in lines:
        cum += cents
        now = cum * paid // amount
        out.append(now - before)
        before = now
    return out


def points_back(points: int, paid: int, refunded_after: int, refunded_before: int) -> int:
    """Points this refund takes back (cumulative floor, everything at a full refund)."""
    def total(refunded: int) -> int:
        return points if refunded >= paid else points * refunded // paid if paid else 0
    return total(refunded_after) - total(refunded_before)


def plan(*, amount: int, paid: int, discount: int, threshold: int, points: int, refunded: int, gross: int,
         coupon_restored: bool, coupon_valid: bool, has_coupon: bool, lines: list[int] | None = None) -> Plan:
    """The refund of ``gross`` cents of a sale that has ``refunded`` cents refunded already.

    Raises ValueError (with the cashier's sentence) when the refund cannot be booked."""
    left = paid - refunded
    if gross <= 0:
        raise ValueError("退款金额必须大于0 · the refund amount must be more than 0")
    if gross > left:
        raise ValueError(f"最多可退 ¥{left / 100:.2f} · at most {left / 100:.2f} is left to refund")
    kept = left - gross
    coupon, clawback = ("kept" if has_coupon and discount else ""), 0
    if coupon and not coupon_restored:
        below = threshold > 0 and kept * amount < threshold * paid
        if kept == 0 or below:
            coupon = "restored" if coupon_valid else "expired"
            if below and kept:
                clawback = kept * discount // paid
    elif coupon_restored:
        coupon = ""  # given back already: this refund has nothing to do with it
    if gross - clawback <= 0:
        raise ValueError(f"退货后不满券门槛，需扣回券优惠 ¥{clawback / 100:.2f}，超过退款金额 · what is kept falls below "
                         f"the coupon's threshold: {clawback / 100:.2f} of discount is kept back, more than this refund")
    net = gross - clawback
    return Plan(gross, clawback, points_back(points, paid, refunded + net, refunded), coupon, list(lines or []),
                kept * amount // paid if paid else 0, threshold if has_coupon else 0)
