import time
def test_smoke(stack):
    import requests
    print(stack.url)
    r = requests.get(stack.url + "/revenue-accounting/", timeout=10)
    print("anon", r.status_code, r.text[:200])
    s = stack.browser_session("admin")
    r = s.get(stack.url + "/revenue-accounting/", timeout=30)
    print("admin", r.status_code, r.text[:3000])
    r = requests.get(stack.url + "/api/v2/plugins", headers={"Authorization": "Bearer " + stack.token("admin")})
    print(r.json())
