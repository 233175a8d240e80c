"""clser_tf: CLS-ER in Keras 3 / TensorFlow."""

from setuptools import find_packages, setup

setup(
    name="clser_tf",
    version="0.1.0",
    description="CLS-ER (Learning Fast, Learning Slow, ICLR 2022) in Keras 3 / TensorFlow",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["clser_tf", "clser_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "tensorflow-datasets==4.9.10",
        "numpy==2.4.6",
        "absl-py==2.5.1",
        "tensorboard==2.21.0",  # tf.summary needs it; TensorFlow 2.21 no longer installs it
        "matplotlib==3.11.2",  # the run's figures (clser_tf.figures), Agg backend
        "scipy==1.17.1",  # a study's statistics (clser_tf.aggregate): t quantiles, Welch's test
    ],
    extras_require={"test": ["pytest==9.0.3"]},
)
