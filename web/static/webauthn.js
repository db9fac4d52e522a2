// WebAuthn ceremonies for the server-rendered pages. The page embeds the options the
// server made in <script type="application/json" id="webauthn-options"> and a form
// #webauthn-form with data-webauthn-mode="create" (register) or "get" (sign in) and a
// hidden input name="response". This script runs the ceremony, puts the credential
// (JSON, base64url fields, as go-webauthn parses it) in that input and submits the form.
// A "get" form with data-conditional also offers the person's passkeys in the autofill
// of the fields marked autocomplete="... webauthn" (conditional mediation), for as long
// as the page is open; the button then cancels that and asks at once.
"use strict";

(function () {
  function toBuffer(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }).buffer;
  }

  function toBase64url(buf) {
    if (!buf) return undefined;
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeIDs(list) {
    (list || []).forEach(function (c) { c.id = toBuffer(c.id); });
  }

  // publicKeyOptions turns the server's JSON into what the browser API takes.
  function publicKeyOptions(json, mode) {
    var o = JSON.parse(json);
    if (typeof o === "string") o = JSON.parse(o); // html/template writes a Go string in a JSON <script> as a JSON string
    o = o.publicKey || o;
    o.challenge = toBuffer(o.challenge);
    if (mode === "create") {
      o.user.id = toBuffer(o.user.id);
      decodeIDs(o.excludeCredentials);
    } else {
      decodeIDs(o.allowCredentials);
    }
    return o;
  }

  function serialise(cred) {
    var r = cred.response, out = {
      id: cred.id,
      rawId: toBase64url(cred.rawId),
      type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      response: { clientDataJSON: toBase64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toBase64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toBase64url(r.authenticatorData);
      out.response.signature = toBase64url(r.signature);
      out.response.userHandle = toBase64url(r.userHandle);
    }
    return JSON.stringify(out);
  }

  function showError(form, message) {
    var el = document.getElementById("webauthn-error");
    if (!el) {
      el = document.createElement("p");
      el.id = "webauthn-error";
      el.className = "error";
      el.setAttribute("role", "alert");
      form.parentNode.insertBefore(el, form);
    }
    el.textContent = message;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var script = document.getElementById("webauthn-options");
    var form = document.getElementById("webauthn-form");
    if (!script || !form) return;
    var mode = form.getAttribute("data-webauthn-mode");
    var button = document.getElementById("webauthn-start");
    var busy = false;
    // The page's texts, in its language (data-msg-* attributes set by the template).
    function msg(name, fallback) {
      return form.getAttribute("data-msg-" + name) || fallback;
    }

    function start() {
      if (busy) return;
      if (!window.PublicKeyCredential || !navigator.credentials) {
        showError(form, msg("unsupported", "This browser does not support security keys or passkeys."));
        return;
      }
      busy = true;
      if (button) button.disabled = true;
      Promise.resolve().then(function () {
        var publicKey = publicKeyOptions(script.textContent, mode);
        return mode === "create"
          ? navigator.credentials.create({ publicKey: publicKey })
          : navigator.credentials.get({ publicKey: publicKey });
      }).then(function (cred) {
        form.elements.response.value = serialise(cred);
        form.submit();
      }).catch(function (err) {
        busy = false;
        if (button) button.disabled = false;
        showError(form, err && err.name === "NotAllowedError"
          ? msg("cancelled", "The request was cancelled or timed out. Try again.")
          : msg("failed", "Your security key or passkey could not be used.") + (err && err.message ? " (" + err.message + ")" : ""));
      });
    }

    var conditional = null; // the AbortController of a pending conditional request

    function startConditional() {
      if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) return;
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (!ok || busy) return;
        conditional = new AbortController();
        var signal = conditional.signal;
        return navigator.credentials.get({
          publicKey: publicKeyOptions(script.textContent, mode), mediation: "conditional", signal: signal
        }).then(function (cred) {
          if (signal.aborted || busy) return;
          busy = true;
          form.elements.response.value = serialise(cred);
          form.submit();
        });
      }).catch(function () {
        // Cancelled (the button asks instead) or not chosen: nothing to say.
      });
    }

    function startModal() {
      if (conditional) {
        conditional.abort();
        conditional = null;
      }
      // The browser needs a moment to settle the aborted request.
      setTimeout(start, 0);
    }

    if (button) button.addEventListener("click", form.hasAttribute("data-conditional") ? startModal : start);
    if (form.hasAttribute("data-autostart")) start();
    else if (form.hasAttribute("data-conditional")) startConditional();
  });
})();
