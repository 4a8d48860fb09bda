"""PII recognizers: true positives per type, near misses that must not match, redaction placeholders."""

from __future__ import annotations

import itertools

import pytest

from bastion.guard import ALL_PII_ENTITIES, GuardPolicy, InputGuard
from bastion.guard.checksums import iban_valid, luhn_valid, ssn_valid
from bastion.guard.pii import PiiDetector

DETECTOR = PiiDetector(ALL_PII_ENTITIES)


def found(text: str, detector: PiiDetector = DETECTOR) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detector.scan(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+news@mail.example.co.uk please", ("EMAIL_ADDRESS", "jane.doe+news@mail.example.co.uk")),
        ("Contact: Bob_Smith@corp-mail.io.", ("EMAIL_ADDRESS", "Bob_Smith@corp-mail.io")),
        ("card 4111 1111 1111 1111 expires soon", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("Mastercard 5555-5555-5555-4444 on file", ("CREDIT_CARD", "5555-5555-5555-4444")),
        ("amex 378282246310005.", ("CREDIT_CARD", "378282246310005")),
        ("pay to DE89 3704 0044 0532 0130 00 today", ("IBAN_CODE", "DE89 3704 0044 0532 0130 00")),
        ("iban gb82west12345698765432", ("IBAN_CODE", "gb82west12345698765432")),
        ("My SSN is 536-22-1234.", ("US_SSN", "536-22-1234")),
        ("social security number 536 22 1234", ("US_SSN", "536 22 1234")),
        ("server at 192.168.10.20 is down", ("IP_ADDRESS", "192.168.10.20")),
        ("v6 host 2a00:1450:4001:82b::200e answered", ("IP_ADDRESS", "2a00:1450:4001:82b::200e")),
        ("call +44 20 7946 0958 now", ("PHONE_NUMBER", "+44 20 7946 0958")),
        ("office (415) 555-0132", ("PHONE_NUMBER", "(415) 555-0132")),
        ("Phone: 0490 75 40 81", ("PHONE_NUMBER", "0490 75 40 81")),
        ("desk +1-903-140-4508x769 today", ("PHONE_NUMBER", "+1-903-140-4508x769")),
        ("call me on 55512345 tonight", ("PHONE_NUMBER", "55512345")),  # bare digits, named
        ("dial 0049301234567", ("PHONE_NUMBER", "0049301234567")),
        ("reach us at +4930123456", ("PHONE_NUMBER", "+4930123456")),
        ("wlan0 00:1A:2B:3C:4D:5E", ("MAC_ADDRESS", "00:1A:2B:3C:4D:5E")),
        ("send to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 please", ("CRYPTO", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2")),
        ("my driver's license number is D1234567", ("US_DRIVER_LICENSE", "D1234567")),
        ("passport number: 912803456", ("US_PASSPORT", "912803456")),
        ("I was born on March 3, 1985 in Ohio", ("DATE_TIME", "March 3, 1985")),
        ("DOB: 1985-03-03", ("DATE_TIME", "1985-03-03")),
        ("the patient is a 47-year-old male", ("AGE", "47")),
        ("see https://www.example.org/path?q=1.", ("DOMAIN_NAME", "https://www.example.org/path?q=1")),
    ],
)
def test_true_positives(text: str, expected: tuple[str, str]) -> None:
    assert expected in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 (bad Luhn digit)",
        "order 1234567890123456 shipped",  # 16 digits, fails Luhn
        "IBAN DE88 3704 0044 0532 0130 00 has a bad checksum",
        "XX89 3704 0044 0532 0130 00 is no country",
        "ssn 000-12-3456",
        "ssn 666-12-3456",
        "ssn 900-12-3456",
        "ssn 123-00-4567",
        "ssn 123-45-0000",
        "the example 123-45-6789",
        "version 1.2.3.4 is out",
        "256.10.10.10 is not an address",
        "ISBN 978-3-16-148410-0",
        "order number 12345678 was shipped",
        "ids 0000001,0000002,0000003,0000004 and 55512345",  # bare digits, nothing says phone
        "call the order number 55512345",
        "we grew in 2019-2020 by 12%",
        "pi is 3.14159265358979",
        "price 1,234,567.89 USD",
        "meet 10:30-11:45 on 2024-05-01",
        "coordinates 48.8566, 2.3522",
        "write to docs@example.com for samples",  # reserved documentation domain
        "Foo::Bar::baz() in C++",
        "ping 127.0.0.1 or bind the server to 0.0.0.0",  # loopback and unspecified
        "the docs use 203.0.113.7 and 2001:db8::1, and ::1 is loopback",
    ],
)
def test_near_misses_do_not_match(text: str) -> None:
    assert found(text) == []


def test_bare_date_is_not_pii_by_default_but_is_when_all_dates() -> None:
    text = "The meeting moved to 2024-05-01."
    assert found(text, PiiDetector(["DATE_TIME"])) == []
    assert found(text, PiiDetector(["DATE_TIME"], all_dates=True)) == [("DATE_TIME", "2024-05-01")]


def test_entities_not_enabled_are_not_reported() -> None:
    detector = PiiDetector(["EMAIL_ADDRESS"])
    assert found("a@b.co and 4111 1111 1111 1111", detector) == [("EMAIL_ADDRESS", "a@b.co")]


def test_redaction_uses_typed_placeholders() -> None:
    guard = InputGuard(GuardPolicy())
    result = guard.scan_text("Mail jane@corp.io, card 4111111111111111, IBAN DE89370400440532013000, ssn 536-22-1234.")
    assert result.action == "redact"
    assert result.text == "Mail [EMAIL_ADDRESS], card [CREDIT_CARD], IBAN [IBAN_CODE], ssn [US_SSN]."


def test_validators() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB83WEST12345698765432")
    assert not iban_valid("GB82WEST1234569876543")  # wrong length for GB
    assert ssn_valid("536", "22", "1234")
    assert not ssn_valid("000", "22", "1234")
    assert not ssn_valid("666", "22", "1234")
    assert not ssn_valid("987", "22", "1234")
    assert not ssn_valid("536", "00", "1234")
    assert not ssn_valid("536", "22", "0000")


def test_many_entities_in_one_text_do_not_overlap() -> None:
    text = "Email a@b.co, phone +1 415 555 0132, card 4111-1111-1111-1111, ip 10.0.0.1"
    findings = DETECTOR.scan(text)
    assert [f.type for f in findings] == ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))
