"""A small character-level GPT trained with the chip's attention in its forward pass
(the positive case of closed-loop accuracy), and its softmax twin."""
