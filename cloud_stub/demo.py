"""Demo data for the reference cloud: a site, branded stores, realistic members with purchase
histories across brands and stores, tags from the tag factory, coupons and a targeted campaign, and
(optionally) consented face templates computed from a folder of photos.

Everything is deterministic for a given `seed` and day: names, tiers, points, transactions (their
times are anchored at 00:00 UTC of the day of `now_ms`), coupons. Brands come in affinity groups
(fashion, food, beauty, kids), so brand correlation finds real structure.

Face photos are read only to compute templates; no image is stored. The `inference` package is imported
lazily, only when `faces_dir` is given.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from api.v1 import crm_pb2
from cloud_stub.errors import CloudError
from cloud_stub.storage import Storage
from cloud_stub.storage import now_ms as _now_ms

DAY_MS = 24 * 3600 * 1000
CONSENT_TEXT_VERSION = "face-consent-v1"
SEED_DEVICE_ID = "seed-demo"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
USAGE_HINT = "打开小程序卡包出示给收银员"
WINBACK_EXPRESSION = 'rfm in ["重要挽留客户", "重要保持客户"] or activity in ["沉默客户", "睡眠客户"]'
# (store label, brand, typical ticket in cents); the first two are the demo devices' stores.
BRAND_STORES: list[tuple[str, str, int]] = [
    ("一楼 优衣库", "优衣库", 25000), ("三楼 ZARA", "ZARA", 40000), ("二楼 太平鸟", "太平鸟", 35000),
    ("一楼 星巴克", "星巴克", 4500), ("B1 喜茶", "喜茶", 3000), ("五楼 海底捞", "海底捞", 30000),
    ("一楼 丝芙兰", "丝芙兰", 45000), ("二楼 屈臣氏", "屈臣氏", 12000), ("四楼 乐高", "乐高", 60000),
    ("四楼 巴拉巴拉", "巴拉巴拉", 20000),
]
BRAND_GROUPS = {
    "fashion": ("优衣库", "ZARA", "太平鸟"), "food": ("星巴克", "喜茶", "海底捞"),
    "beauty": ("丝芙兰", "屈臣氏"), "kids": ("乐高", "巴拉巴拉"),
}

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧"
GIVEN_M = ["建", "建国", "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "志强", "文博",
           "浩然", "子轩", "俊杰", "国栋", "海峰", "宇航"]
GIVEN_F = ["淑华", "秀英", "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀兰", "桂英", "海燕",
           "梓萱", "雨桐", "一诺", "欣怡", "佳琪", "婷婷", "思雨"]
# tier → (points range, points needed to keep the tier this period)
TIERS: list[tuple[str, tuple[int, int], int]] = [
    ("普卡", (0, 1999), 0),
    ("银卡", (800, 4999), 2000),
    ("金卡", (2000, 9999), 5000),
    ("璀璨卡", (5000, 19999), 10000),
]
TIER_WEIGHTS = [40, 30, 20, 10]
COUPON_TEMPLATES: list[tuple[str, int, int, int]] = [
    # title, kind, value_cents, threshold_cents
    ("20元现金券", crm_pb2.COUPON_KIND_CASH, 2000, 0),
    ("50元现金券", crm_pb2.COUPON_KIND_CASH, 5000, 0),
    ("满300减30券", crm_pb2.COUPON_KIND_THRESHOLD, 3000, 30000),
    ("满500减80券", crm_pb2.COUPON_KIND_THRESHOLD, 8000, 50000),
    ("满100减10券", crm_pb2.COUPON_KIND_THRESHOLD, 1000, 10000),
]


@dataclass
class MemberReport:
    """What seeding did for one member."""

    member_id: str
    name: str
    person: str | None = None
    enrolled: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"file": ..., "reason": ...}
    templates: int = 0


@dataclass
class SeedReport:
    """What `seed_demo` created."""

    site_id: str
    store_ids: list[str]
    members: list[MemberReport]
    transactions: int = 0
    tags: int = 0
    campaign: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent)


def _names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """`count` distinct (name, gender) pairs drawn from the pools."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < count:
        gender = rng.choice("FM")
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_F if gender == "F" else GIVEN_M)
        if name not in seen:
            seen.add(name)
            out.append((name, gender))
    return out


def _person_images(folder: Path, enroll_per_person: int) -> list[Path]:
    """The photos to enroll: the first `enroll_per_person`, keeping at least one back for testing."""
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) >= enroll_per_person + 1:
        return images[:enroll_per_person]
    return images[: max(1, len(images) - 1)]


class _FaceEncoder:
    """Detector + embedder from the inference package, loaded on first use."""

    def __init__(self) -> None:
        try:
            from inference import detector, embedder, errors, image, store
        except ImportError as err:
            raise CloudError(
                f"seeding faces needs the inference package ({err}); install joyedge with its inference extras"
            ) from err
        self._load_image = image.load_image
        self.image_error: type[Exception] = errors.ImageError
        self.model = str(embedder.EMBEDDING_MODEL)
        try:
            models = store.ModelStore()
            self._detector = detector.BlazeFaceDetector.from_store(models, variant="short")
            self._embedder = embedder.FaceEmbedder.from_store(models)
        except errors.InferenceError as err:
            raise CloudError(f"face models are not usable: {err}") from err

    def encode(self, path: Path) -> Any | None:
        """The embedding of the largest face in `path`, or None when no face is found."""
        rgb = self._load_image(path)
        faces = self._detector.detect(rgb)
        if not faces:
            return None
        best = max(faces, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        return self._embedder.embed(rgb, best.box)


def seed_demo(
    storage: Storage,
    faces_dir: Path | None = None,
    *,
    members: int = 12,
    enroll_per_person: int = 3,
    site_id: str = "site-demo",
    store_id: str = "store-demo-01",
    seed: int = 7,
    days: int = 365,
    now_ms: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Create a demo site with two stores and members (tags, coupons and, from photos, face templates).

    Without `faces_dir`, `members` members are created. With `faces_dir` (one sub-folder per person,
    sorted by name), each person folder becomes one member and `members` is ignored; the first
    `enroll_per_person` photos of each person are enrolled under a recorded consent. A photo without a
    face, or one that cannot be read, is reported in `skipped`, not fatal. Re-running with the same
    arguments updates the same rows. Raises CloudError when `faces_dir` is missing or the face models
    cannot be loaded.
    """
    say = progress or (lambda _msg: None)
    rng = random.Random(seed)
    now = now_ms if now_ms is not None else _now_ms()
    if enroll_per_person < 1:
        raise CloudError(f"enroll_per_person must be at least 1, got {enroll_per_person}")
    if days < 1:
        raise CloudError(f"days must be at least 1, got {days}")

    people: list[Path | None]
    if faces_dir is not None:
        faces_dir = Path(faces_dir)
        if not faces_dir.is_dir():
            raise CloudError(f"faces folder {faces_dir} does not exist (expected one sub-folder per person)")
        people = sorted((p for p in faces_dir.iterdir() if p.is_dir()), key=lambda p: p.name)
        if not people:
            raise CloudError(f"faces folder {faces_dir} has no person sub-folders")
    else:
        if members < 0:
            raise CloudError(f"members must be >= 0, got {members}")
        people = [None] * members

    second_store = store_id[:-2] + "02" if store_id.endswith("01") else store_id + "-2"
    store_ids = [store_id, second_store]
    storage.upsert_site(site_id, "悦云演示广场")
    storage.upsert_store(store_ids[0], site_id, "悦云演示广场 一楼旗舰店", BRAND_STORES[0][1])
    storage.upsert_store(store_ids[1], site_id, "悦云演示广场 三楼快闪店", BRAND_STORES[1][1])
    # Further branded stores (transactions only; the demo devices stand in the first two).
    brand_stores = list(zip(store_ids, (b for _, b, _ in BRAND_STORES[:2]), strict=True))
    for n, (label, brand, _) in enumerate(BRAND_STORES[2:], 3):
        sid = f"{site_id}-store-{n:02d}"
        storage.upsert_store(sid, site_id, f"悦云演示广场 {label}", brand)
        brand_stores.append((sid, brand))

    encoder: _FaceEncoder | None = None
    if faces_dir is not None:
        say("loading face detector and embedder")
        encoder = _FaceEncoder()

    reports: list[MemberReport] = []
    for index, ((name, gender), person) in enumerate(zip(_names(rng, len(people)), people, strict=True), 1):
        member_id = f"{site_id}-m{index:03d}"
        report = MemberReport(member_id=member_id, name=name, person=person.name if person else None)
        _seed_member(storage, rng, member_id, name, gender, site_id, store_ids, now)
        if person is not None and encoder is not None:
            say(f"enrolling {person.name} as {name} ({member_id})")
            _enroll(storage, encoder, person, report, enroll_per_person, now)
        reports.append(report)
    say(f"seeded {len(reports)} members in {site_id}; writing {days} days of transactions")
    anchor = now - now % DAY_MS
    txns = _transactions(storage, [r.member_id for r in reports], brand_stores, days, seed, anchor)
    say(f"{txns} transactions; computing tags")
    from cloud_stub.tags import compute_tags

    run = compute_tags(storage, as_of_ms=now, seed=seed, progress=say)
    campaign = _campaign(storage, site_id, now)
    say(f"campaign {campaign['campaign_id']}: {campaign['issued']} coupons issued")
    return SeedReport(site_id=site_id, store_ids=store_ids, members=reports, transactions=txns,
                      tags=run.tags_written, campaign=campaign)


def _transactions(
    storage: Storage, member_ids: list[str], brand_stores: list[tuple[str, str]], days: int, seed: int,
    anchor_ms: int,
) -> int:
    """Purchase histories: each member shops mostly in one brand group at their own rhythm, some
    stop coming back (silent, sleeping, lost members). Written in one transaction."""
    from cloud_stub.crm import PURCHASE, RETURN

    if days < 1:
        raise CloudError(f"days must be at least 1, got {days}")
    ticket = {brand: cents for _, brand, cents in BRAND_STORES}
    group_of = {brand: g for g, brands in BRAND_GROUPS.items() for brand in brands}
    by_group: dict[str, list[tuple[str, str]]] = {}
    for sid, brand in brand_stores:
        by_group.setdefault(group_of[brand], []).append((sid, brand))
    groups = sorted(by_group)
    rows = []
    for member_id in member_ids:
        rng = random.Random(f"{seed}:{member_id}")
        home = rng.choice(groups)
        per_30_days = rng.choice([0.3, 0.6, 1, 2, 4, 8])
        stop = 0 if rng.random() < 0.6 else rng.randint(0, days)  # days ago the member stopped coming
        day = days
        k = 0
        while True:
            day -= max(1, int(rng.expovariate(per_30_days / 30)))
            if day < stop or day < 1:
                break
            group = home if rng.random() < 0.8 else rng.choice(groups)
            sid, brand = rng.choice(by_group[group])
            cents = max(100, int(rng.lognormvariate(0, 0.5) * ticket[brand]) // 100 * 100)
            at = anchor_ms - day * DAY_MS + rng.randint(10, 21) * 3600 * 1000
            k += 1
            kind = RETURN if rng.random() < 0.03 else PURCHASE
            rows.append((f"{member_id}-x{k:04d}", member_id, sid, brand, cents, at, kind))
        if k == 0:  # every demo member has bought at least once
            sid, brand = rng.choice(by_group[home])
            rows.append((f"{member_id}-x0001", member_id, sid, brand, ticket[brand], anchor_ms - DAY_MS, PURCHASE))
    with storage.transaction("seed transactions") as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", rows,
        )
    return len(rows)


def _campaign(storage: Storage, site_id: str, now: int) -> dict[str, Any]:
    """The demo win-back campaign, issued to lapsing important members."""
    from cloud_stub.marketing import campaigns

    campaign_id = f"{site_id}-winback"
    try:
        campaigns.get_campaign(storage, campaign_id)
    except CloudError:
        campaigns.create_campaign(storage, {
            "campaign_id": campaign_id, "site_id": site_id, "name": "老客回流 满300减30",
            "expression": WINBACK_EXPRESSION, "title": "满300减30券", "kind": crm_pb2.COUPON_KIND_THRESHOLD,
            "value_cents": 3000, "threshold_cents": 30000, "store_ids": [],
            "valid_from_ms": now - now % DAY_MS, "valid_until_ms": now - now % DAY_MS + 30 * DAY_MS,
            "per_member_limit": 1, "usage_hint": USAGE_HINT,
        })
    counts = campaigns.issue_campaign(storage, campaign_id)
    return {"campaign_id": campaign_id, "expression": WINBACK_EXPRESSION, **counts}


def _seed_member(
    storage: Storage,
    rng: random.Random,
    member_id: str,
    name: str,
    gender: str,
    site_id: str,
    store_ids: list[str],
    now: int,
) -> None:
    tier, (lo, hi), keep = rng.choices(TIERS, weights=TIER_WEIGHTS)[0]
    year = rng.randint(1965, 2004)
    birthday = f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    phone = "1" + rng.choice("3578") + "".join(str(rng.randint(0, 9)) for _ in range(9))
    storage.upsert_member(
        member_id=member_id, site_id=site_id, name=name, tier=tier, points=rng.randint(lo, hi),
        tier_keep_points=keep, phone=phone, gender=gender, birthday=birthday, updated_at_ms=now,
    )
    # The same draws as when demo tags were random (now the tag factory computes them), so every
    # seed keeps the members, tiers and coupons it always gave (the device demo relies on them).
    rng.randint(1, 7)
    rng.choice(range(8))
    rng.uniform(0.5, 1.0)
    rng.choice(range(2))
    rng.uniform(0.5, 1.0)
    rng.randint(1, 5)
    rng.uniform(0.5, 6.0)
    for n, (title, kind, value_cents, threshold) in enumerate(
        rng.sample(COUPON_TEMPLATES, rng.randint(1, 3)), 1
    ):
        scope = [] if rng.random() < 0.6 else [rng.choice(store_ids)]
        storage.upsert_coupon(
            coupon_id=f"{member_id}-c{n}", member_id=member_id, title=title, kind=kind,
            value_cents=value_cents, threshold_cents=threshold, store_ids=scope,
            valid_from_ms=now - DAY_MS, valid_until_ms=now + 30 * DAY_MS, usage_hint=USAGE_HINT,
        )


def _enroll(
    storage: Storage,
    encoder: _FaceEncoder,
    person: Path,
    report: MemberReport,
    enroll_per_person: int,
    now: int,
) -> None:
    images = _person_images(person, enroll_per_person)
    if not images:
        report.skipped.append({"file": person.name, "reason": "no image files in the folder"})
        return
    consent_id = storage.add_consent(
        member_id=report.member_id, device_id=SEED_DEVICE_ID, text_version=CONSENT_TEXT_VERSION,
        agreed_at_ms=now, consent_id=f"{report.member_id}-consent-1",
    )
    for k, image in enumerate(images, 1):
        try:
            vector = encoder.encode(image)
        except encoder.image_error as err:
            report.skipped.append({"file": image.name, "reason": f"unreadable image: {err}"})
            continue
        if vector is None:
            report.skipped.append({"file": image.name, "reason": "no face detected"})
            continue
        storage.add_template(
            member_id=report.member_id, consent_id=consent_id, model=encoder.model,
            vector=vector.astype("<f4").tobytes(), template_id=f"{report.member_id}-t{k}",
            created_at_ms=now,
        )
        report.enrolled.append(image.name)
        report.templates += 1
