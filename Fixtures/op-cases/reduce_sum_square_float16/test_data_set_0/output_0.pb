
By0J:BF@UE¥H