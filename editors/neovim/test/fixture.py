def fibonacci(n):
    if n < 2:
        return n
    return 
