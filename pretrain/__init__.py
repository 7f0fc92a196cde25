"""mPMR / VECO / mGLM pretraining: config, data pipeline, models and losses, DeepSpeed trainer,
checkpoints. Import the submodules you need (`pretrain.config` stays light; `pretrain.model`
pulls in torch and transformers)."""
