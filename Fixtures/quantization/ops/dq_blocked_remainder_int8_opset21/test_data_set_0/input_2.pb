B
zero_pointJшсос