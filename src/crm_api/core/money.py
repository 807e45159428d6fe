"""ISO 4217 currencies and their minor units; money is Decimal end to end."""

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from crm_api.core.errors import Invalid

# Active ISO 4217 codes with their minor unit (digits after the decimal point).
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UZS VED VES "
    "WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}


MAX_AMOUNT = Decimal(10) ** 14
"""Amounts are below this: 18 digits with 4 after the point, as every money input allows."""


def validate_currency(code: str) -> str:
    code = code.strip().upper()
    if code not in MINOR_UNITS:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


def check_scale(amount: Decimal, currency: str) -> None:
    """An amount may not carry more decimals than its currency's minor unit."""
    exponent = amount.normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > MINOR_UNITS[currency]:
        raise ValueError(f"{currency} allows at most {MINOR_UNITS[currency]} decimal places")


def to_minor_units(amount: Decimal, currency: str) -> Decimal:
    """`amount` with exactly the currency's decimals, rounded half-even (banker's rounding)
    where it has more: stored amounts keep a wider scale, computed ones (totals, weighted
    amounts) are rounded here."""
    exponent = Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))
    with localcontext(prec=80):  # products of quantities and prices outgrow the default 28
        return amount.quantize(exponent, rounding=ROUND_HALF_EVEN)


def require_scale(amount: Decimal, currency: str, field: str) -> None:
    """`check_scale` as a 422 naming `field`."""
    try:
        check_scale(amount, currency)
    except ValueError as error:
        raise Invalid("Too many decimals for the currency.", [(field, str(error))]) from None


def trimmed(value: Decimal) -> Decimal:
    """`value` without trailing zeros and never in exponent form: 2.5000 → 2.5, 100.0 → 100."""
    return Decimal(f"{value.normalize():f}")
