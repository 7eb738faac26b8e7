"""Fine-tuning a pre-trained discriminator: classification, regression, extractive QA, tagging."""
