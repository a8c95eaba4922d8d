"""Masking rules for group chats and exports (core/privacy.py): pure functions, no I/O."""

from __future__ import annotations

import pytest

from core.privacy import (
    PLACEHOLDER,
    anonymised,
    clip,
    is_masked,
    mask_address,
    mask_phone,
    mask_text,
    sees_full_roster,
)


@pytest.mark.parametrize(("text", "want"), [
    ("电话13812345678", "电话138****5678"),
    ("打 138 1234 5678 找我", "打 138****5678 找我"),
    ("138-1234-5678", "138****5678"),
    ("+86 138 1234 5678", "138****5678"),
    ("+8613812345678。", "138****5678。"),
    ("0086-13812345678", "138****5678"),
    ("全角１３８１２３４５６７８号码", "全角138****5678号码"),
    ("１３８－１２３４－５６７８", "138****5678"),
    ("座机0558-1234567，或者(0558)7654321", "座机0558-***4567，或者(0558)***4321"),
    ("010 12345678", "010 ****5678"),
    ("两个号码13812345678和13998765432", "两个号码138****5678和139****5432"),
])
def test_phone_numbers_in_text_are_masked(text: str, want: str) -> None:
    assert mask_text(text) == want


@pytest.mark.parametrize("text", [
    "工单#138123456789已办结",  # 12 digits: a longer number, not a phone
    "编码3416020010010101001",  # a 19-digit grid code
    "任务2138123456780",
    "请于05月03日 14:00前答复",
    "拨打 119（火警）/ 110（报警）/ 120（急救）",
    "邀请码 j0551234567x",  # letters around: a token, not a landline
    "订单号12812345678",  # 12x is no mobile prefix
    "",
])
def test_other_numbers_are_left_whole(text: str) -> None:
    assert mask_text(text) == text


def test_an_id_card_number_is_masked_whole_not_as_a_phone_inside_it() -> None:
    # "19800101381" inside it looks like a mobile number; it must come out as one masked ID.
    assert mask_text("身份证110101198001013812，") == "身份证110101********3812，"
    assert mask_text("身份证34160219900101136X") == "身份证341602********136X"
    assert mask_text("号码341602199013011234") == "号码341602199013011234"  # month 13: no ID
    assert mask_text("３４１６０２１９９００１０１１２３４") == "341602********1234"


def test_house_numbers_in_text_are_masked_but_dates_are_not() -> None:
    assert mask_text("我家幸福路12号3单元502漏水") == "我家幸福路**号***漏水"
    assert mask_text("3号楼门口") == "**号楼***门口"
    assert mask_text("5月3号下午") == "5月3号下午"
    assert mask_text("1单元") == "**单元***"


def test_mask_address_keeps_the_street_only() -> None:
    assert mask_address("幸福路12号3单元502") == "幸福路**号***"
    assert mask_address("幸福路１２号") == "幸福路**号"
    assert mask_address("城关镇东关村张庄") == "城关镇东***"
    assert mask_address("") == ""
    assert mask_address(None) is None
    assert is_masked(mask_address("幸福路12号"))


def test_mask_phone_for_export_cells() -> None:
    assert mask_phone("13900000009") == "139****0009"
    assert mask_phone("+86 139-0000-0009") == "139****0009"
    assert mask_phone("0558-1234567") == "055****4567"
    assert mask_phone("") == ""
    assert is_masked(mask_phone("13900000009"))
    assert not is_masked("13900000009")
    assert not is_masked(None)


def test_anonymised_keeps_none_as_none() -> None:
    assert anonymised(None) is None
    assert anonymised("居民的原话") == PLACEHOLDER


def test_clip_never_cuts_through_a_number() -> None:
    assert clip("短文本", 10) == "短文本"
    assert clip("一二三四五六七八九十", 5) == "一二三四五…"
    assert clip("请打电话13812345678联系", 8) == "请打电话…"
    assert clip("请打电话 138 1234 5678", 12) == "请打电话…"
    assert clip("编号12后面", 4) == "编号12…"  # the number ends at the cut: whole
    assert clip("编号12 后面", 4) == "编号…"  # a space may go on into a number: cut before
    assert mask_text(clip("身份证110101198001013812有", 10)) == "身份证…"


def test_only_town_and_district_admins_get_the_whole_roster() -> None:
    assert sees_full_roster("district") and sees_full_roster("town")
    for level in ("village", "area", "group", "neighborhood", "department"):
        assert not sees_full_roster(level)
