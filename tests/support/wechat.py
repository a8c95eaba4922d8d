"""Callbacks as WeChat and WeCom send them: XML (or JSON) encrypted with real wechatpy crypto."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from wechatpy.crypto import WeChatCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WeComCrypto

from bot.handlers.xml_safe import xml_fields
from core.clock import Clock

# The sample from WeChat's own "消息加解密" documentation (the WXBizMsgCrypt Python sample,
# Sample.py, as shipped with the docs; copy read at charlesXu86/Chatbot_CN
# Chatbot_Web/impl/weixin/Sample.py).
DOC_TOKEN = "spamtest"
DOC_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DOC_APP_ID = "wx2c2769f8efd9abc2"
DOC_TIMESTAMP = "1409735669"
DOC_NONCE = "1320562132"
DOC_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
DOC_BODY = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA["
    "oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>"
    "6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJl"
    "E2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wV"
    "sMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzj"
    "lpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnif"
    "JpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNP"
    "fUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>"
)
# WeCom's sample as used by wechatpy's own tests (tests/test_crypto.py, wechatpy/wechatpy):
# token, EncodingAESKey, CorpID, a signed echostr and a signed encrypted message.
WECOM_TOKEN = "123456"
WECOM_AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
WECOM_CORP_ID = "wx49f0ab532d5d035a"
WECOM_ECHO = {"msg_signature": "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
              "timestamp": "1411443780", "nonce": "437374425",
              "echostr": "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9B"
                         "v41n7hOchLF6p+Q=="}
WECOM_MSG_QUERY = {"msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
                   "timestamp": "1411525903", "nonce": "461056294"}
WECOM_MSG_BODY = (
    "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA["
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCr"
    "sTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4"
    "+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td"
    "7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4d"
    "Shyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt>\n"
    "<AgentID><![CDATA[1]]></AgentID>\n</xml>"
)


def xml_of(fields: dict[str, Any]) -> str:
    """A callback body the way WeChat writes one."""
    parts = []
    for k, v in fields.items():
        if isinstance(v, int | float):
            parts.append(f"<{k}>{v}</{k}>")
        else:
            parts.append(f"<{k}><![CDATA[{escape(str(v))}]]></{k}>")
    return "<xml>" + "".join(parts) + "</xml>"


_NONCES = itertools.count(1)


def fresh_nonce() -> str:
    """A nonce no other callback of this test run carries (the app remembers them)."""
    return f"n{next(_NONCES)}"


def stamp(clock: Clock) -> str:
    """The `timestamp` WeChat would sign at the clock's time."""
    return str(int(clock.now().timestamp()))


def at(timestamp: str) -> datetime:
    """The moment a sample's `timestamp` names (set the app's FakeClock to it)."""
    return datetime.fromtimestamp(int(timestamp), UTC)


def sealed(crypto: WeChatCrypto | WeComCrypto, plain: str, nonce: str | None = None, *,
           clock: Clock) -> tuple[dict[str, str], bytes]:
    """(query, body) of an encrypted callback, signed at the clock's time."""
    ts, nonce = stamp(clock), nonce or fresh_nonce()
    env = xml_fields(crypto.encrypt_message(plain, nonce, ts))
    query = {"msg_signature": env["MsgSignature"], "timestamp": ts, "nonce": nonce,
             "encrypt_type": "aes"}
    body = f"<xml><ToUserName><![CDATA[x]]></ToUserName><Encrypt><![CDATA[{env['Encrypt']}]]>" \
           f"</Encrypt></xml>"
    return query, body.encode()


def sealed_json(crypto: WeComCrypto, data: dict[str, Any], nonce: str | None = None, *,
                clock: Clock) -> tuple[dict[str, str], bytes]:
    """(query, body) of a smart bot's encrypted JSON callback, signed at the clock's time."""
    ts, nonce = stamp(clock), nonce or fresh_nonce()
    env = xml_fields(crypto.encrypt_message(json.dumps(data, ensure_ascii=False), nonce, ts))
    return ({"msg_signature": env["MsgSignature"], "timestamp": ts, "nonce": nonce},
            json.dumps({"encrypt": env["Encrypt"]}).encode())
