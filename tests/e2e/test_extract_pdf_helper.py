"""The ragd-extract-pdf helper as a black box: the process ragd runs for every
PDF, built next to the ragd binary. A multi-page PDF written by this test (a
minimal but complete PDF with a cross-reference table), a truncated copy,
garbage behind a %PDF header and empty input: the helper answers framed
records on stdout ("RAGDPDF1", then "<tag> <length>" + bytes), an 'E' record
and exit status 2 for what poppler cannot read, and never crashes."""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import RAGD_BIN, SLOW, VALGRIND, VALGRIND_CMD

HELPER = Path(RAGD_BIN).with_name("ragd-extract-pdf")


def make_pdf(pages):
    """A PDF with one line of Helvetica text per page, offsets computed."""
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", None,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            "<< /Title (Helper Test) >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
        content = len(objs)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content} 0 R >>")
        kids.append(f"{len(objs)} 0 R")
    objs[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info 4 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def frames(out):
    assert out.startswith(b"RAGDPDF1\n"), out[:40]
    pos, recs = 9, []
    while pos < len(out):
        nl = out.index(b"\n", pos)
        tag, n = out[pos:nl].split(b" ")
        n = int(n)
        recs.append((tag.decode(), out[nl + 1:nl + 1 + n]))
        pos = nl + 1 + n
    return recs


def run_helper(data, tmp_path):
    f = tmp_path / "in.pdf"
    f.write_bytes(data)
    cmd = [str(HELPER)]
    if VALGRIND:  # memcheck errors and definite leaks exit 99, which no test accepts
        cmd = VALGRIND_CMD + [f"--log-file={tmp_path / 'helper.valgrind'}"] + cmd
    with open(f, "rb") as stdin:
        return subprocess.run(cmd, stdin=stdin, capture_output=True, timeout=60 * SLOW)


@pytest.fixture(autouse=True)
def need_helper():
    if not os.access(HELPER, os.X_OK):
        pytest.fail(f"{HELPER} not built next to {RAGD_BIN}")


def test_pages_in_order(tmp_path):
    pdf = make_pdf(["First page text", "Second page text", "Third page text"])
    r = run_helper(pdf, tmp_path)
    assert r.returncode == 0, r.stderr
    recs = frames(r.stdout)
    assert recs[0] == ("N", b"3")
    assert ("T", b"Helper Test") in recs
    pages = [body.decode() for tag, body in recs if tag == "P"]
    assert [p.strip() for p in pages] == ["First page text", "Second page text",
                                          "Third page text"]
    assert recs[-1] == ("D", b"")


@pytest.mark.parametrize("name,data", [
    ("truncated", make_pdf(["one", "two"])[:120]),
    ("garbage", b"%PDF-1.7\n" + bytes(range(256)) * 8),
    ("empty", b""),
])
def test_unreadable_input_is_an_error_record(tmp_path, name, data):
    r = run_helper(data, tmp_path)
    assert r.returncode == 2, (name, r.returncode, r.stdout[:200])
    recs = frames(r.stdout)
    assert recs[-1][0] == "E" and recs[-1][1], recs
