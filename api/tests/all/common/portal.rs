//! Signing in to the portal and reading its pages over HTTP, as a browser would (cookies, the
//! sign-in form's CSRF token).

use reqwest::redirect::Policy;

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

pub fn cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// The `_csrf` value of the first form in a page.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

/// Signs in with `token`; the session cookie's value.
pub async fn sign_in(endpoint: &str, token: &str) -> String {
    let login = http().get(format!("{endpoint}/portal/login")).send().await.unwrap();
    let login_cookie = cookie(&login, "dbaas_portal_login");
    let csrf = csrf_of(&login.text().await.unwrap());
    let signed_in = http()
        .post(format!("{endpoint}/portal/login"))
        .header("cookie", format!("dbaas_portal_login={login_cookie}"))
        .form(&[("_csrf", csrf.as_str()), ("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    cookie(&signed_in, "dbaas_portal")
}

pub async fn portal_get(endpoint: &str, session: &str, path: &str) -> reqwest::Response {
    http().get(format!("{endpoint}{path}")).header("cookie", format!("dbaas_portal={session}")).send().await.unwrap()
}

/// Posts a form as the signed-in session.
pub async fn portal_post(endpoint: &str, session: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(format!("{endpoint}{path}"))
        .header("cookie", format!("dbaas_portal={session}"))
        .form(form)
        .send()
        .await
        .unwrap()
}
