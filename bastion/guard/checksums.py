"""Check-digit validators that turn "looks like a number" into "is one": fewer false positives."""

from __future__ import annotations

import hashlib

# IBAN lengths per country (ISO 13616 registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """Luhn mod-10 check over a string of digits."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_prefix_plausible(digits: str) -> bool:
    """Issuer ranges of the card networks that use 12-19 digit numbers."""
    length = len(digits)
    first = digits[0]
    if first == "4":
        return length in (13, 16, 19)
    if first == "3":
        two = digits[:2]
        if two in ("34", "37"):
            return length == 15
        if two in ("30", "36", "38", "39"):
            return 14 <= length <= 19
        if two == "35":  # JCB (3528-3589 issued; generators use the whole 35 range)
            return 16 <= length <= 19
        return False
    if first == "5":
        return ("51" <= digits[:2] <= "55" and length == 16) or 12 <= length <= 19  # Mastercard, Maestro
    if first == "2":
        return ("2221" <= digits[:4] <= "2720" and length == 16) or (digits[:4] == "2131" and length == 15)
    if first == "6":
        return 12 <= length <= 19  # Discover, UnionPay, Maestro, RuPay
    if first == "1":
        return digits[:4] == "1800" and length == 15  # JCB legacy
    return False


def iban_valid(compact: str) -> bool:
    """ISO 13616 check: known country, right length, mod-97 of the rearranged number equals 1."""
    iban = compact.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    remainder = 0
    for char in rearranged:
        if char.isdigit():
            remainder = (remainder * 10 + ord(char) - 48) % 97
        elif "A" <= char <= "Z":
            remainder = (remainder * 100 + ord(char) - 55) % 97
        else:
            return False
    return remainder == 1


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSN rules: area never 000, 666 or 900-999; group never 00; serial never 0000.

    Well-known published numbers (the Woolworth card, the 123-45-6789 example) and numbers made of
    one repeated digit are rejected too.
    """
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    number = area + group + serial
    return number not in ("123456789", "078051120", "219099999") and len(set(number)) > 1


_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}


def base58check_valid(address: str) -> bool:
    """Bitcoin legacy/P2SH address: base58 decodes to 25 bytes whose last 4 are a double-SHA256."""
    number = 0
    for char in address:
        index = _B58_INDEX.get(char)
        if index is None:
            return False
        number = number * 58 + index
    try:
        raw = number.to_bytes(25, "big")
    except OverflowError:
        return False
    checksum = hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4]
    return raw[-4:] == checksum


_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def bech32_valid(address: str) -> bool:
    """Segwit address (bc1...): bech32 or bech32m checksum."""
    address = address.lower()
    hrp, _, data_part = address.rpartition("1")
    if hrp != "bc" or len(data_part) < 6:
        return False
    values = []
    for char in data_part:
        index = _BECH32_CHARSET.find(char)
        if index < 0:
            return False
        values.append(index)
    checksum_input = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values
    chk = 1
    for value in checksum_input:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATORS):
            if (top >> i) & 1:
                chk ^= generator
    return chk in (1, 0x2BC830A3)
