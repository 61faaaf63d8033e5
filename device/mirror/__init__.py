"""The 摩镜's extras around the greeting: enrollment, find my car, anonymous content, traffic insight.

Each module is one responsibility; `device.mirror.features.MirrorFeatures` bundles them for
`device.app.MirrorApp`, and `device.mirror.assemble.build_features` builds them from a device config.
"""
