"""liquid-rl: liquid neural networks as control policies."""
