"""Phone numbers as Pinpoint holds them: E.164 by the book, but exports carry national numbers
too (AWS's own import example: `2065550182` with `Location.Country` `CAN`). A bare number is
read in the endpoint's country (ISO 3166-1 alpha-2 or alpha-3) with libphonenumber's metadata
(trunk prefixes, number lengths, which ranges are in service), so `2065550182` in CAN is
`+12065550182` and `07911 123456` in GB is `+447911123456`.

Which reading wins, for digits without a `+` or `00`:
1. a valid number in the endpoint's country (national digits, or with its calling code in front);
2. a valid number read as international without its `+` (`12065550182` in CN is a US number:
   no Chinese number starts 120);
3. a possible (right length, unassigned range) number in the endpoint's country;
4. without a country, the digits as an international number (`+` added), as before.
"""

from __future__ import annotations

import phonenumbers

from midstage.logic.identity import normalise_phone
from midstage.logic.imports.model import DIGITS_ONLY, PHONE_NOISE

# ISO 3166-1 alpha-3 code, then alpha-2 (from the iso-codes package's iso_3166-1.json, 4.15).
_ALPHA3 = """
ABWAW AFGAF AGOAO AIAAI ALAAX ALBAL ANDAD AREAE ARGAR ARMAM ASMAS ATAAQ ATFTF ATGAG AUSAU AUTAT
AZEAZ BDIBI BELBE BENBJ BESBQ BFABF BGDBD BGRBG BHRBH BHSBS BIHBA BLMBL BLRBY BLZBZ BMUBM BOLBO
BRABR BRBBB BRNBN BTNBT BVTBV BWABW CAFCF CANCA CCKCC CHECH CHLCL CHNCN CIVCI CMRCM CODCD COGCG
COKCK COLCO COMKM CPVCV CRICR CUBCU CUWCW CXRCX CYMKY CYPCY CZECZ DEUDE DJIDJ DMADM DNKDK DOMDO
DZADZ ECUEC EGYEG ERIER ESHEH ESPES ESTEE ETHET FINFI FJIFJ FLKFK FRAFR FROFO FSMFM GABGA GBRGB
GEOGE GGYGG GHAGH GIBGI GINGN GLPGP GMBGM GNBGW GNQGQ GRCGR GRDGD GRLGL GTMGT GUFGF GUMGU GUYGY
HKGHK HMDHM HNDHN HRVHR HTIHT HUNHU IDNID IMNIM INDIN IOTIO IRLIE IRNIR IRQIQ ISLIS ISRIL ITAIT
JAMJM JEYJE JORJO JPNJP KAZKZ KENKE KGZKG KHMKH KIRKI KNAKN KORKR KWTKW LAOLA LBNLB LBRLR LBYLY
LCALC LIELI LKALK LSOLS LTULT LUXLU LVALV MACMO MAFMF MARMA MCOMC MDAMD MDGMG MDVMV MEXMX MHLMH
MKDMK MLIML MLTMT MMRMM MNEME MNGMN MNPMP MOZMZ MRTMR MSRMS MTQMQ MUSMU MWIMW MYSMY MYTYT NAMNA
NCLNC NERNE NFKNF NGANG NICNI NIUNU NLDNL NORNO NPLNP NRUNR NZLNZ OMNOM PAKPK PANPA PCNPN PERPE
PHLPH PLWPW PNGPG POLPL PRIPR PRKKP PRTPT PRYPY PSEPS PYFPF QATQA REURE ROURO RUSRU RWARW SAUSA
SDNSD SENSN SGPSG SGSGS SHNSH SJMSJ SLBSB SLESL SLVSV SMRSM SOMSO SPMPM SRBRS SSDSS STPST SURSR
SVKSK SVNSI SWESE SWZSZ SXMSX SYCSC SYRSY TCATC TCDTD TGOTG THATH TJKTJ TKLTK TKMTM TLSTL TONTO
TTOTT TUNTN TURTR TUVTV TWNTW TZATZ UGAUG UKRUA UMIUM URYUY USAUS UZBUZ VATVA VCTVC VENVE VGBVG
VIRVI VNMVN VUTVU WLFWF WSMWS YEMYE ZAFZA ZMBZM ZWEZW
"""
ALPHA3_TO_ALPHA2 = {pair[:3]: pair[3:] for pair in _ALPHA3.split()}


def region_of(country: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 code of a country written in alpha-2 or alpha-3, any case."""
    if not country:
        return None
    code = country.strip().upper()
    region = ALPHA3_TO_ALPHA2.get(code, code) if len(code) == 3 else code
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def international_phone(address: str, country: str | None) -> str | None:
    """An SMS or VOICE address in E.164, read in the endpoint's country when it is bare."""
    explicit = address.strip().startswith(("+", "00"))
    if explicit:
        return normalise_phone(address)
    digits = PHONE_NOISE.sub("", address)
    if not digits.isascii() or not digits.isdigit():
        return None
    region = region_of(country)
    national = _parsed(digits, region) if region else None
    if national is not None and phonenumbers.is_valid_number(national):
        return _e164(national)
    abroad = _parsed("+" + digits, None)
    if abroad is not None and phonenumbers.is_valid_number(abroad):
        return _e164(abroad)
    if national is not None and phonenumbers.is_possible_number(national):
        return _e164(national)
    if region is None and DIGITS_ONLY.fullmatch(digits) and not digits.startswith("0"):
        return normalise_phone("+" + digits)
    return None


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _e164(number: phonenumbers.PhoneNumber) -> str | None:
    return normalise_phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
