"""Packaging entry for JoyEdge: device app, sync daemon, reference cloud and provisioning CLI."""

from setuptools import find_packages, setup

PACKAGES = find_packages(
    include=[
        "api", "api.*", "drivers", "drivers.*", "inference", "inference.*", "sync", "sync.*",
        "device", "device.*", "kiosk_ui", "kiosk_ui.*", "cloud_stub", "cloud_stub.*",
        "provisioning", "provisioning.*",
    ]
)

setup(
    name="joyedge",
    version="0.1.0",
    description="On-device face recognition, member greeting and pay-by-face for 悦云 smart-retail devices",
    python_requires=">=3.11,<3.12",
    packages=PACKAGES,
    include_package_data=True,
    package_data={
        "inference": ["models.toml"],
        "kiosk_ui": ["static/*", "static/**/*"],
        "device": ["demo_assets/*.md", "demo_assets/*/*", "demo_assets/*/*/*"],
    },
    install_requires=[
        "numpy>=2.0,<3",
        "pillow>=10",
        "opencv-python-headless>=4.9",
        "ai-edge-litert>=1.2",
        "dlib-bin>=19.24",
        "onnxruntime>=1.18",
        "grpcio>=1.85,<2",
        "grpcio-health-checking>=1.85,<2",
        "grpcio-reflection>=1.85,<2",
        "protobuf>=7.35.1,<8",
        "sqlite-utils>=3.36",
        "cryptography>=42",
        "pydantic>=2.6,<3",
        "scikit-image>=0.22",
        "matplotlib>=3.8",
        # peripherals: ESC/POS receipt printers, serial scanners and displays, camera barcodes
        # (pyzbar needs libzbar0 from apt: tools/bootstrap-system.sh)
        "python-escpos>=3.1,<4",
        "pyserial>=3.5",
        "pyzbar>=0.1.9",
        # provisioning: device discovery over mDNS (device advertises, joyprov discover browses)
        "zeroconf>=0.130",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "grpcio-tools==1.85.1",
            "hypothesis>=6.100",
            "playwright>=1.45",
            "pytest-playwright>=0.5",
        ],
        # Raspberry Pi devices: the camera stack and evdev input. picamera2 also needs
        # Raspberry Pi OS's libcamera (apt: python3-picamera2) on the device itself.
        "pi": ["picamera2>=0.3.17", "evdev>=1.7", "pyserial>=3.5", "pyusb>=1.2"],
        # Coral Edge TPU: nothing from PyPI. Install libedgetpu1-std (and optionally
        # python3-pycoral) from Coral's own apt repository; the PyPI package named
        # "pycoral" is an unrelated project and must never be installed. See README.
        "coral": [],
    },
    entry_points={
        "console_scripts": [
            "joyedge=device.cli:main",
            "joyedge-cloud=cloud_stub.cli:main",
            "joyprov=provisioning.cli:main",
        ]
    },
)
