from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "torch==2.13.0",
    "numpy",
    "pyyaml",
    "regex",  # Unicode property classes for whole-word name matching (\p{M} in Indic scripts)
    "pydantic>=2",  # strict type checks of config dataclasses
    "tqdm",
    "psutil",  # process trees, states and start times (launchers, run-folder lock)
    # data_prep
    "megatron-core==0.16.1",
    "sentencepiece>=0.2",
    "tokenizers>=0.23",
    "transformers>=5.0",
    "safetensors",
    "wikiextractor==3.1.0",
    "spacy>=3.8",
    "pythainlp>=5.0",
    "sacremoses>=0.1",
    "jieba",  # zh word segmentation (spaCy's jieba segmenter, offline)
    "opencc",  # zh Traditional -> Simplified (config t2s), binary wheel with its dictionaries
    "sudachipy",  # ja segmentation through spaCy, dictionary shipped on PyPI
    "sudachidict_core",
    "python-mecab-ko",  # ko segmentation (MeCab + mecab-ko-dic wheels)
    "pyvi",  # vi word segmentation
    # pretrain
    "deepspeed>=0.19",
    "triton>=3.0; platform_system == 'Linux'",
    "tensorboard",
    # finetune
    "seqeval",
    "sacrebleu",  # BLEU of the seq2seq (translation) fine-tuning
]

setup(
    name="xpretrain",
    version="0.1.0",
    description="Multilingual pretraining (mPMR, VECO, mGLM) on DeepSpeed",
    packages=find_packages(include=["data_prep*", "pretrain*", "kernels*", "finetune*"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=8", "pytest-timeout", "pytest-xdist"]},
    entry_points={"console_scripts": ["xpretrain-data=data_prep.__main__:main"]},
)
