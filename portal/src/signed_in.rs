//! Who a portal request is from: the signed-in user, as the page chrome shows them and the
//! handlers act for them.

use dbaas_domain::auth::Principal;

use crate::api::Api;

/// A signed-in user.
#[derive(Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub csrf: String,
    pub principal: Principal,
    pub api: Api,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.principal.is_admin()
    }

    /// Who is signed in, for the page header.
    pub fn who(&self) -> String {
        match &self.principal.tenant {
            Some(t) => format!("tenant {}", t.name),
            None => "platform admin".into(),
        }
    }
}
