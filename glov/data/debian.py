"""Pinned Debian packages: fetched by ``glov fetch-data`` (``apt-get download``, no root, unpacked here
in Python) into ``resources/sources``; a system-wide ``apt-get install`` of the same package works too.
Without apt (another OS, a proxy), ``glov fetch-data --from PATH`` takes an already downloaded
``.deb``, a folder holding one, or a folder of the unpacked data; the data must then hash to the
pinned :attr:`DebianPackage.tree_sha256`.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from glov.data import DataError
from glov.io import file_digest

SOURCES_DIR = Path("resources/sources")


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    sha256: str
    data_dir: str  # inside the package (and under / when installed system-wide)
    tree_sha256: str  # of the data dir's contents (:func:`tree_digest`): checks data that came without its .deb

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.split(':')[-1]}_all.deb"


DEBIAN = {p.name: p for p in (  # every pinned package, by name
    DebianPackage(
        "dataset-fashion-mnist",
        "0.0~git20200523.55506a9-1",
        "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        "usr/share/datasets/fashion-mnist",
        "aeb9c536214aea51677e25933934c1da7c3144fff05901a2a94169855086bf9c",
    ),
    DebianPackage(
        "openclipart-png",
        "1:0.18+dfsg-19",
        "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
        "usr/share/openclipart/png",
        "21f2947286b500151f6a9245482d1ced566a3ed64883e26dd961baa4d4806c49",
    ),
    DebianPackage(
        "fonts-cmu",
        "0.7.0-5",
        "1bb92b7040b2737740cb77d0a89a830bf3824a2d20b20f039856b20f8349804d",
        "usr/share/fonts/truetype/cmu",
        "8170a8abe80fc2e38cccb46dc6d1901237b2b7175cf200ffd72fec7ffe22df08",
    ),
    DebianPackage(
        "fonts-croscore",
        "20201225-1",
        "64904820b729ff40038f85683004e3b94b328d969bc0fbba263c58d635452923",
        "usr/share/fonts/truetype/croscore",
        "dd497fe1c2654e604244c2c4d8bc335e13a273156435ca5e01f94d30012f71f6",
    ),
    DebianPackage(
        "fonts-crosextra-caladea",
        "20200211-1",
        "dd51af7629df5a2f3799f889cdf63d5abdda32e94e5de59398f728d98604a240",
        "usr/share/fonts/truetype/crosextra",
        "a3ab0c0856038b2aff654c90e4cfda845a5addfa4e7d218b08ad39068542e36c",
    ),
    DebianPackage(
        "fonts-crosextra-carlito",
        "20220224-1",
        "673689e3a887cd150ca5018c26e1a4162709add3a1bdc0a2527af6fd073980d7",
        "usr/share/fonts/truetype/crosextra",
        "ce6784f95d982e4de981e18bea936a96d0762061d6ee425eb9d6eadc4e3462cf",
    ),
    DebianPackage(
        "fonts-dejavu-core",
        "2.37-6",
        "8892669e51aab4dc56682c8e39d8ddb7d70fad83c369344e1e240bf3ca22bb76",
        "usr/share/fonts/truetype/dejavu",
        "c18f3f5ae2998f4d8a00b07deea35c9a883c7171b7faa03b9100dcc93b0ca4d8",
    ),
    DebianPackage(
        "fonts-dejavu-extra",
        "2.37-6",
        "6cb7ed32de6df209c065e9e5cc5154a2f36d4c334d9a0af534fabb67d38ab75b",
        "usr/share/fonts/truetype/dejavu",
        "d32abde4a0081c4d30af3db696392ec1850121a6649a6b099d9785114c471a58",
    ),
    DebianPackage(
        "fonts-freefont-ttf",
        "20120503-10",
        "4ca1c21ebc479198a3a5879d236c8317d6f7b2f1c403f7890e24c02eead05615",
        "usr/share/fonts/truetype/freefont",
        "e914121a6fe87aa347379d9b1298b78e18b77e5002157a91d5e7fa1ad1fbfa09",
    ),
    DebianPackage(
        "fonts-liberation2",
        "2.1.5-1",
        "35ffaa54f117e633e89a5da89af235a073b34dbe582726fbf6989568f7fd9bda",
        "usr/share/fonts/truetype/liberation2",
        "8f4778148dbb0306d0497f3ac15b8870b58e00bd92777680333a87de9db4837e",
    ),
    DebianPackage(
        "fonts-linuxlibertine",
        "5.3.0-6",
        "5c77471e910189b3e4e2eda2b1c5f549ddcaf4de8f9640b97773643970d29087",
        "usr/share/fonts/opentype/linux-libertine",
        "d2dfe7791717be497e23de3a7be0a66e58c01266003d45ce8b963f79eefec21d",
    ),
    DebianPackage(
        "fonts-lmodern",
        "2.005-1",
        "027cd4ddc91b9254bd7fd9b9ce55d58c095319f691d4d7cbd09d2e4a99c58398",
        "usr/share/texmf/fonts/opentype/public/lm",
        "f4d3ea7cfeda0f89ad92345cfb1d4b7ced66ccce119b5401a80c0758b114e670",
    ),
    DebianPackage(
        "fonts-noto-core",
        "20201225-1",
        "58f4f0bb6720f919f92096b3508e1412a0f1544424ade6c5b5bf1eb694dd64ba",
        "usr/share/fonts/truetype/noto",
        "41c1207b966093119df7775495781ea187396ec0c9e987bef248fd029d968568",
    ),
    DebianPackage(
        "fonts-texgyre",
        "20180621-6",
        "e7230e2dee0030c440ee841de04ef9254aa1fec73ccba93a3e1f637fa868a99a",
        "usr/share/texmf/fonts/opentype/public/tex-gyre",
        "ddd705309869dd2a05bb21178539032ba9d6b012522ebe4b1073e455f1def9a1",
    ),
    DebianPackage(
        "fonts-urw-base35",
        "20200910-7",
        "93e4997c99c4c31ea88c5d37e2259af0a0c826b9358931d5a69f794f7f0c73ac",
        "usr/share/fonts/opentype/urw-base35",
        "5560a3a9f6f8b326d518e384b610b03cbb58d5ba033cbb86fd4e72d2c9827563",
    ),
)}


def tree_digest(folder: Path) -> str:
    """sha256 over every file's path and content: equal trees, equal digests. A symbolic link counts
    as the file it points to (so a copy that replaced links by files hashes the same) and must point
    to a file inside ``folder`` (:func:`check_link`): the digest never reads outside the folder, and
    a tree with a link to / or to a folder cannot match a pin."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            check_link(p, folder)
        if p.is_file():
            h.update(f"{p.relative_to(folder).as_posix()}\t{file_digest(p)}\n".encode())
    return h.hexdigest()


def check_link(link: Path, folder: Path) -> None:
    """Refuse a symbolic link unless its text is relative, stays inside ``folder`` wherever the folder
    is moved, and it ends at a regular file inside it (as in the pinned packages: openclipart's
    duplicates). Anything else would let data from outside pass as the package's."""
    target = os.readlink(link)
    lexical = Path(os.path.normpath(Path(link.parent.relative_to(folder), target)))
    try:
        resolved = link.resolve(strict=True)
        inside = resolved.is_relative_to(folder.resolve()) and resolved.is_file()
    except (OSError, RuntimeError):  # dangling, or a loop
        inside = False
    if os.path.isabs(target) or lexical.parts[:1] == ("..",) or not inside:
        raise DataError(
            f"{link} is a symbolic link to {target!r}, which is not a file inside {folder}: the pinned packages hold no "
            "such link. Remove it (or copy the folder again from an unpacked package), or pass the package's .deb"
        )


def deb_members(deb: Path) -> dict[str, bytes]:
    """The members of a .deb (an ``ar`` archive: debian-binary, control.tar.*, data.tar.*), read in
    Python so that unpacking needs no dpkg-deb."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DataError(f"{deb} is not a Debian package (.deb): download it again")
    members, pos = {}, 8
    while pos + 60 <= len(raw):
        header = raw[pos : pos + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
        members[name] = raw[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def unpack_deb(deb: Path, package: DebianPackage, dest: Path) -> None:
    """Extract the package's data dir (regular files, folders, links that stay inside) into ``dest``."""
    data = next((blob for name, blob in deb_members(deb).items() if name.startswith("data.tar")), None)
    if data is None:
        raise DataError(f"{deb} holds no data.tar.*: not a complete Debian package, download it again")
    prefix = package.data_dir.strip("/") + "/"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            wanted = [m for m in tar.getmembers() if (m.name.removeprefix("./") + "/").startswith(prefix)]
            tar.extractall(dest, members=wanted, filter="data")
    except tarfile.TarError as exc:
        raise DataError(f"cannot unpack {deb} ({exc}); unpack it with `dpkg-deb -x {deb} DIR` and pass DIR to --from") from None


def _given_for(package: DebianPackage, given: Iterable[Path]) -> Path | None:
    """The first of the user's ``--from`` paths that holds this package: its .deb, a folder with
    it, or a folder of its data (another machine's resources/sources, an unpacked package, or the
    data dir itself)."""
    for path in map(Path, given):
        if path.is_file() and path.name.startswith(f"{package.name}_") and path.suffix == ".deb":
            return path
        if path.is_dir():
            debs = sorted(path.glob(f"{package.name}_*.deb"))
            if debs:
                return debs[0]
            for candidate in (path / package.name / package.data_dir, path / package.data_dir, path):
                if candidate.is_dir() and candidate.name == Path(package.data_dir).name:
                    return candidate
    return None


def fetch_debian(package: DebianPackage, sources_dir: Path = SOURCES_DIR, given: Iterable[Path] = ()) -> Path:
    """Put one pinned package's data under ``sources_dir`` and return its data dir: from a path the
    user gave (``--from``), else with ``apt-get download`` (no root needed). Verified either way."""
    target = sources_dir / package.name
    if (target / package.data_dir).is_dir():
        return target / package.data_dir
    sources_dir.mkdir(parents=True, exist_ok=True)
    found = _given_for(package, given)
    with tempfile.TemporaryDirectory(dir=sources_dir) as tmp:
        unpacked = Path(tmp) / "x"
        if found is not None and found.is_dir():
            shutil.copytree(found, unpacked / package.data_dir, symlinks=True)
        else:
            deb = found or _apt_download(package, Path(tmp))
            digest = file_digest(deb)
            if digest != package.sha256:
                raise DataError(f"{deb} has sha256 {digest}, expected {package.sha256}: another build of {package.name}")
            unpack_deb(deb, package, unpacked)
        digest = tree_digest(unpacked / package.data_dir)  # a copied folder, and our own unpacking, checked alike
        if digest != package.tree_sha256:
            raise DataError(
                f"{found or package.name} does not hold {package.name} {package.version}: its files hash to {digest}, "
                f"expected {package.tree_sha256}. Pass the package's .deb ({package.deb_name}), or a complete copy of "
                f"its {package.data_dir}"
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(unpacked, target)  # whole or not at all: the data dir appears last
    return target / package.data_dir


def _apt_download(package: DebianPackage, folder: Path) -> Path:
    if shutil.which("apt-get") is None:
        raise DataError(
            f"fetching {package.name} needs apt-get (Debian/Ubuntu). Elsewhere, download {package.deb_name} "
            f"(https://packages.debian.org/bookworm/all/{package.name}/download) and run "
            f"`glov fetch-data --from <that file or its folder>`; a folder of the unpacked data works too."
        )
    cmd = ["apt-get", "download", f"{package.name}={package.version}"]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(
            f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}. Refresh the package lists with `apt-get update` "
            f"(as root) and run `glov fetch-data` again, or download {package.deb_name} elsewhere and use "
            "`glov fetch-data --from <file>`."
        )
    return next(folder.glob("*.deb"))


def installed_dir(package: DebianPackage, sources_dir: Path = SOURCES_DIR) -> Path | None:
    """The package's data dir: fetched here, else installed system-wide; None when neither."""
    for root in (sources_dir / package.name, Path("/")):
        if (root / package.data_dir).is_dir():
            return root / package.data_dir
    return None


def fetch_all(sources_dir: Path = SOURCES_DIR, given: Iterable[Path] = ()) -> list[Path]:
    given = list(given)  # once: every package looks through the same paths
    return [fetch_debian(p, sources_dir, given) for p in DEBIAN.values()]
