"""Packaging for Messenger: server, clients, admin tool and benchmark."""

from setuptools import find_packages, setup

SERVER = [
    "Twisted[tls]>=24.7",
    "cryptography>=47",  # 47 releases the GIL around RSA operations (the crypto pool)
    "pyOpenSSL>=24.0",
    "service-identity>=24.1",
    "pyasn1>=0.5",
    "prometheus-client>=0.20",
    "psycopg2-binary>=2.9",   # the PostgreSQL store (--database postgresql://...)
    "txredisapi>=1.4.10",     # the cluster mode's Redis client (Twisted-native)
]
CLIENT = SERVER + ["PyQt5>=5.15", "qt5reactor>=0.6.3", "Pillow>=10.1"]
AUDIO = ["pyaudio>=0.2.13", "opuslib>=3.0", "livekit>=1.0"]   # livekit: WebRTC echo/noise
TEST = ["ruff>=0.4", "numpy>=1.24", "pesq>=0.0.4"]           # call quality (PESQ-WB)

setup(
    name="messenger",
    version="0.1.0",
    description="Self-hosted messenger: Twisted server, PyQt5 client, voice calls",
    python_requires=">=3.11",
    packages=find_packages(include=["messenger", "messenger.*"]) + ["twisted.plugins"],
    package_data={
        "messenger.store": ["schema/*.sql"],
        "messenger.server": ["mail/templates/*.txt"],
        "messenger.bench": ["data/*.raw", "data/README.md"],
    },
    install_requires=SERVER,
    extras_require={
        "server": SERVER,
        "client": CLIENT,
        "audio": AUDIO,
        "test": TEST,
        "all": CLIENT + AUDIO + TEST,
    },
    entry_points={
        "console_scripts": [
            "messenger-client = messenger.client.ui.app:main",
            "messenger-cli = messenger.client.cli:main",
            "messenger-admin = messenger.admin.cli:main",
            "messenger-bench = messenger.bench.cli:main",
        ],
    },
)
