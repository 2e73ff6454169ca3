BscaleJ
вё<млL=млл=