B
zero_pointJ_E4‡¿|&…K