
By0Jf?YA